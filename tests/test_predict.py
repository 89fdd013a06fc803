import io
import os
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

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
    predicted = [r.class_ for r in predict_files(predict, paths)]
    assert np.mean(np.array(predicted) == np.array(labels)) >= 0.9
    assert main(["predict", "--model-dir", str(model_dir), str(EXAMPLE)]) == 0


def test_predict_json_lines_for_images_npy_and_idx(tmp_path, synthetic_model_dir, synthetic, capsys):
    np.save(tmp_path / "batch.npy", synthetic.test_images[:3].numpy())
    write_idx(tmp_path / "batch-idx3-ubyte", synthetic.test_images[:2].numpy())
    # The synthetic digits are no handwriting (the gate declines them): answered at threshold 0.
    code = main(["predict", "--model-dir", str(synthetic_model_dir), "--json", "--top-k", "2", "--min-confidence", "0",
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
    # A blank picture is an answer ("no ink"), not an error.
    assert out.splitlines()[0] == f"{tmp_path / 'blank.png'}: no ink" and out.splitlines()[1].startswith(str(EXAMPLE))
    errors = err.strip().splitlines()
    failed = [f for f in files if f.name != "blank.png"]
    assert len(errors) == len(failed) == 4
    for line, f in zip(errors, failed):
        assert line.startswith(f"lenet: error: {f}: ")


def test_declined_pictures_are_answers_in_words_and_exit_0(tmp_path, synthetic_model_dir, capsys):
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    two = Image.new("L", (200, 100), 255)
    ImageDraw.Draw(two).ellipse((20, 15, 80, 85), outline=0, width=8)
    ImageDraw.Draw(two).line((140, 15, 140, 85), fill=0, width=8)
    two.save(tmp_path / "two.png")
    files = [str(tmp_path / "blank.png"), str(tmp_path / "two.png"), str(EXAMPLE)]
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--min-confidence", "1", *files]) == 0
    blank, several, seven = capsys.readouterr().out.splitlines()
    assert blank == f"{files[0]}: no ink"
    assert several == f"{files[1]}: several digits; `lenet predict --number` reads numbers"
    # At 1, nothing is sure enough: declined, with what it nearly was.
    assert seven.startswith(f"{EXAMPLE}: ") and "(closest: 7, " in seven and (" unsure " in seven or "not a digit" in seven)
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--min-confidence", "1", "--json", files[2]]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["class"] is None and answer["top_k"][0]["class"] == 7 and answer["verdict"] != "digit"


@pytest.mark.parametrize("bad", ["1.5", "-1", "nan"])
def test_a_threshold_outside_0_to_1_is_a_one_line_error(synthetic_model_dir, capsys, bad):
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--min-confidence", bad, str(EXAMPLE)]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: --min-confidence must be a number from 0 to 1, got {float(bad)!r}"


@pytest.mark.parametrize("k", ["0", "11"])
@pytest.mark.parametrize("command", [["predict", str(EXAMPLE)], ["eval"], ["ensemble"]])
def test_top_k_outside_the_ten_classes_is_refused(synthetic_model_dir, capsys, k, command):
    # eval and ensemble printed "top-0-accuracy 0.0000" for 0 and a top-10 figure for 11.
    model = ["--model-dir", str(synthetic_model_dir)] if command[0] != "ensemble" else [str(synthetic_model_dir)]
    assert main([command[0], *model, *command[1:], "--top-k", k]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: --top-k must be from 1 to 10, got {k}"


def _number_picture(mnist, indices, path):
    """Test digits INDICES side by side, dark on light, as a PNG at PATH; returns the number they write."""
    canvas = Image.new("L", (60 + 90 * len(indices), 140), 255)
    for position, i in enumerate(indices):
        digit = Image.fromarray(255 - mnist.test_images[i].numpy()).resize((84, 84), Image.Resampling.BICUBIC)
        canvas.paste(digit, (30 + 90 * position, 28))
    canvas.save(path)
    return "".join(str(int(mnist.test_labels[i])) for i in indices)


def test_predict_number_reads_each_digit_and_shows_the_inputs(tmp_path, mnist, mnist_model_dir, capsys):
    model_dir, _ = mnist_model_dir
    model = open_model(model_dir)
    # Digits the model reads right as arrays, so that only the reading of the picture is tested.
    right = np.flatnonzero(model.probabilities(mnist.test_images[:50].float().div(255)).argmax(1)
                           == mnist.test_labels[:50].numpy())
    truth = _number_picture(mnist, right[:4], tmp_path / "amount.png")
    shown = tmp_path / "shown"
    assert main(["predict", "--model-dir", str(model_dir), "--number", "--json", "--show-input", str(shown),
                 str(tmp_path / "amount.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["number"] == truth and len(result["digits"]) == 4
    lefts = [d["box"][0] for d in result["digits"]]
    assert all(30 + 90 * p <= x < 30 + 90 * p + 84 for p, x in enumerate(lefts))  # in each pasted field
    assert sorted(p.name for p in shown.iterdir()) == [f"amount-digit{p}.png" for p in range(4)]
    seen = np.asarray(Image.open(shown / "amount-digit0.png"))
    assert seen.shape == (28, 28) and seen.dtype == np.uint8 and seen[0].max() == 0 and seen.max() > 200
    assert main(["predict", "--model-dir", str(model_dir), "--number", str(tmp_path / "amount.png")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'amount.png'}: {truth}   top-3 per digit: ")


def test_show_input_writes_the_28x28_each_picture_became(tmp_path, synthetic_model_dir, synthetic, capsys):
    np.save(tmp_path / "batch.npy", synthetic.test_images[:2].numpy())
    out = tmp_path / "seen"
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--show-input", str(out), "--json",
                 str(EXAMPLE), str(tmp_path / "batch.npy"), str(EXAMPLE)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["batch-0.png", "batch-1.png", "seven-2.png", "seven.png"]
    assert np.array_equal(np.asarray(Image.open(out / "batch-1.png")), synthetic.test_images[1].numpy())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and "input" not in lines[0]


def test_number_pictures_without_digits_are_one_line_errors(tmp_path, synthetic_model_dir, capsys):
    Image.new("L", (300, 100), 255).save(tmp_path / "blank.png")
    (tmp_path / "text.png").write_text("hello")
    code = main(["predict", "--model-dir", str(synthetic_model_dir), "--number",
                 str(tmp_path / "blank.png"), str(tmp_path / "text.png"), str(tmp_path / "missing.png")])
    out, err = capsys.readouterr()
    errors = err.strip().splitlines()
    assert out.strip() == f"{tmp_path / 'blank.png'}: no ink"  # an answer: no number
    assert code == 1 and errors == [
        f"lenet: error: {tmp_path / 'text.png'}: not a recognised image format",
        f"lenet: error: {tmp_path / 'missing.png'}: cannot read (No such file or directory)"]


def _dds_of_unknown_pixel_format() -> bytes:
    """A DDS file whose pixel format is a FourCC Pillow does not know: Pillow raises NotImplementedError."""
    buffer = io.BytesIO()
    Image.new("RGB", (28, 28)).save(buffer, format="DDS")
    raw = bytearray(buffer.getvalue())
    raw[80:84], raw[84:88] = (4).to_bytes(4, "little"), b"XXXX"  # DDPF_FOURCC, FourCC "XXXX"
    return bytes(raw)


def _stroke(size: int = 28) -> np.ndarray:
    picture = np.zeros((size, size), np.float32)
    picture[size // 5:size - size // 5, size // 2 - 2:size // 2 + 2] = 1.0
    return picture


def test_pictures_pillow_cannot_decode_and_files_that_never_end_are_one_line_errors(tmp_path, synthetic_model_dir,
                                                                                      capsys):
    (tmp_path / "bad.dds").write_bytes(_dds_of_unknown_pixel_format())
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 28, 28), np.uint8))
    (tmp_path / "big.npy").write_bytes(buffer.getvalue().replace(b"(1, 28, 28)", b"(1000000000, 28, 28)"))
    (tmp_path / "dims.idx").write_bytes(bytes([0, 0, 8, 255]) + bytes(1020))
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.png")
    files = [tmp_path / n for n in ("bad.dds", "big.npy", "dims.idx", "zero.png", "pipe.png")]
    code = main(["predict", "--model-dir", str(synthetic_model_dir), *map(str, files), str(EXAMPLE)])
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith(str(EXAMPLE)) and out.count("\n") == 1
    errors = err.strip().splitlines()
    assert len(errors) == len(files) and "Traceback" not in err
    for line, f, what in zip(errors, files, ("cannot decode image", "does not match its shape", "255 dimensions",
                                             "not a regular file", "not a regular file")):
        assert line.startswith(f"lenet: error: {f}: ") and what in line


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "SPIDER"])
def test_pictures_starting_with_two_zero_bytes_are_read_as_pictures_not_idx(tmp_path, synthetic_model_dir, fmt,
                                                                            capsys):
    picture = Image.fromarray(_stroke() * 255.0)  # mode F: SPIDER's
    picture = picture if fmt == "SPIDER" else picture.convert("L")
    path = tmp_path / f"digit.{fmt.lower()}"
    picture.save(path, format=fmt)
    assert path.read_bytes()[:2] == b"\x00\x00"
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["index"] is None  # one picture, not an array


def test_inference_precision_auto_is_bf16_only_where_the_cpu_has_bf16_arithmetic(monkeypatch, mnist_model_dir, mnist):
    import torch
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert open_model(mnist_model_dir[0]).precision == "fp32 (auto: no bf16 arithmetic on this CPU)"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    auto = open_model(mnist_model_dir[0])
    assert auto.precision == "bf16 (auto: AVX512-BF16)"
    fp32 = open_model(mnist_model_dir[0], precision="fp32")
    assert fp32.precision == "fp32"
    images = mnist.test_images[:1000]
    rounded, exact = auto.logits(images), fp32.logits(images)
    # bf16 rounds the products' inputs to 8 bits of mantissa: the logits move a little, the classes hardly.
    assert rounded.dtype == np.float32 and 0 < np.abs(rounded - exact).max() < 0.5
    assert (rounded.argmax(1) == exact.argmax(1)).mean() >= 0.99


def test_an_onnx_file_refuses_bf16(mnist_model_dir, tmp_path, capsys):
    from lenet.export import export_model
    onnx_path = export_model(mnist_model_dir[0], "onnx", tmp_path / "m.onnx")
    assert open_model(onnx_path).precision == "fp32 (onnxruntime)"
    assert main(["predict", "--model", str(onnx_path), str(EXAMPLE), "--precision", "bf16"]) == 1
    assert capsys.readouterr().err.strip() == (f"lenet: error: {onnx_path}: an ONNX file runs in fp32 (onnxruntime); "
                                               f"drop --precision bf16")


def test_eval_names_the_precision_it_used(mnist_model_dir, mnist, capsys, monkeypatch):
    # The first 1,000 test images: on a CPU without bf16 arithmetic, bf16 is emulated and 10,000 took 46 s.
    import dataclasses
    import lenet.data
    monkeypatch.setattr(lenet.data, "load_dataset", lambda *args, **kwargs: dataclasses.replace(
        mnist, test_images=mnist.test_images[:1000], test_labels=mnist.test_labels[:1000]))
    assert main(["eval", "--model-dir", str(mnist_model_dir[0]), "--precision", "bf16", "--no-tensorboard"]) == 0
    assert capsys.readouterr().out.startswith("step 214, bf16 on test (1000 images): accuracy 0.9")
    assert main(["eval", "--model-dir", str(mnist_model_dir[0]), "--precision", "fp32", "--json",
                 "--no-tensorboard"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"


def test_show_input_that_cannot_be_written_is_an_error_for_that_file_and_the_run_goes_on(tmp_path,
                                                                                         synthetic_model_dir, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    np.save(tmp_path / "batch.npy", np.zeros((2, 28, 28), np.uint8))
    code = main(["predict", "--model-dir", str(synthetic_model_dir), "--show-input", str(a_file), "--json",
                 str(EXAMPLE), str(tmp_path / "batch.npy")])
    out, err = capsys.readouterr()
    assert code == 1 and len(out.splitlines()) == 3  # every answer, and an error for each picture not written
    assert err.splitlines() == [f"lenet: error: cannot write {a_file / name}: {a_file} is a file, not a directory"
                                for name in ("seven.png", "batch-0.png", "batch-1.png")]


def test_show_input_never_writes_over_a_model_directorys_files_or_a_file_of_another_kind(tmp_path,
                                                                                         synthetic_model_dir, capsys):
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "recipe.json").write_text("{}")  # a model directory's
    checkpoint = shown / "model-00000060.png"
    checkpoint.write_bytes(b"a checkpoint's name")
    notes = shown / "seven.png"
    notes.write_text("the user's notes")
    (tmp_path / "model-00000060.png").write_bytes(EXAMPLE.read_bytes())
    code = main(["predict", "--model-dir", str(synthetic_model_dir), "--show-input", str(shown),
                 str(EXAMPLE), str(tmp_path / "model-00000060.png")])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 2
    assert err[0].startswith(f"lenet: error: {notes}: exists and is not a PNG picture")
    assert err[1].startswith(f"lenet: error: {checkpoint}: one of the model directory {shown}'s own files")
    assert notes.read_text() == "the user's notes" and checkpoint.read_bytes() == b"a checkpoint's name"
