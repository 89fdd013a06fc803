import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet.cli import main
from lenet.idx import write_idx
from lenet.inference import open_model
from lenet.predict import predict_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seven.png"


def test_rendered_mnist_digits_are_recognised_after_normalization(tmp_path, mnist, mnist_model_dir):
    """Real test digits, blown up 8x, inverted to dark-on-light and pasted off-centre into a large
    canvas: the preprocessing must bring them back to MNIST form well enough to classify."""
    model_dir, _ = mnist_model_dir
    paths, labels = [], []
    for i in range(40):
        digit = Image.fromarray(255 - mnist.test_images[i].numpy()).resize((224, 224), Image.Resampling.BICUBIC)
        canvas = Image.new("L", (500, 400), 255)
        canvas.paste(digit, (20 + 6 * i, 10 + 3 * i))
        path = tmp_path / f"digit{i}.png"
        canvas.convert("RGB").save(path)
        paths.append(path)
        labels.append(int(mnist.test_labels[i]))
    predict = open_model(model_dir)
    predicted = [r["class"] for r in predict_files(predict, paths)]
    assert np.mean(np.array(predicted) == np.array(labels)) >= 0.9
    assert main(["predict", "--model-dir", str(model_dir), str(EXAMPLE)]) == 0


def test_predict_json_lines_for_images_npy_and_idx(tmp_path, synthetic_model_dir, synthetic, capsys):
    np.save(tmp_path / "batch.npy", synthetic.test_images[:3].numpy())
    write_idx(tmp_path / "batch-idx3-ubyte", synthetic.test_images[:2].numpy())
    code = main(["predict", "--model-dir", str(synthetic_model_dir), "--json", "--top-k", "2",
                 str(EXAMPLE), str(tmp_path / "batch.npy"), str(tmp_path / "batch-idx3-ubyte")])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(Path(r["file"]).name, r["index"]) for r in lines] == [
        ("seven.png", None), ("batch.npy", 0), ("batch.npy", 1), ("batch.npy", 2),
        ("batch-idx3-ubyte", 0), ("batch-idx3-ubyte", 1)]
    for r in lines:
        assert len(r["probabilities"]) == 10 and abs(sum(r["probabilities"]) - 1) < 1e-4
        assert r["class"] == int(np.argmax(r["probabilities"])) == r["top_k"][0]["class"]
        assert len(r["top_k"]) == 2
    # The synthetic model learned its classes: the .npy rows come back with their labels.
    assert [r["class"] for r in lines[1:4]] == synthetic.test_labels[:3].tolist()


def test_bad_files_get_one_line_errors_and_the_rest_are_still_predicted(tmp_path, synthetic_model_dir, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    buffer = io.BytesIO()
    Image.open(EXAMPLE).save(buffer, format="PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[:200])
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    files = [tmp_path / n for n in ("empty.png", "text.png", "truncated.png", "blank.png", "missing.png")]
    code = main(["predict", "--model-dir", str(synthetic_model_dir), *map(str, files), str(EXAMPLE)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.count("\n") == 1 and out.startswith(str(EXAMPLE))
    errors = err.strip().splitlines()
    assert len(errors) == 5
    for line, f in zip(errors, files):
        assert line.startswith(f"lenet: error: {f}: ")


@pytest.mark.parametrize("k", ["0", "11"])
@pytest.mark.parametrize("command", [["predict", str(EXAMPLE)], ["eval"], ["ensemble"]])
def test_top_k_outside_the_ten_classes_is_refused(synthetic_model_dir, capsys, k, command):
    # eval and ensemble printed "top-0-accuracy 0.0000" for 0 and a top-10 figure for 11.
    model = ["--model-dir", str(synthetic_model_dir)] if command[0] != "ensemble" else [str(synthetic_model_dir)]
    assert main([command[0], *model, *command[1:], "--top-k", k]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: --top-k must be from 1 to 10, got {k}"
