import json

import numpy as np
import pytest
import torch

from lenet.checkpoint import load_model
from lenet.cli import main
from lenet.decline import declined
from lenet.export import export_model
from lenet.errors import LenetError
from lenet.inference import OnnxModel, open_model
from lenet.model_info import INPUT_FORMAT


@pytest.fixture(scope="module")
def onnx_file(mnist_model_dir, tmp_path_factory):
    model_dir, _ = mnist_model_dir
    return export_model(model_dir, "onnx", tmp_path_factory.mktemp("export") / "cnn.onnx")


def test_onnx_matches_pytorch_on_the_whole_test_set(mnist_model_dir, onnx_file, mnist):
    from_dir = open_model(mnist_model_dir[0], precision="fp32")  # the export is fp32
    inputs = mnist.test_images.float().div(255)
    expected = torch.from_numpy(from_dir.probabilities(inputs))
    predictor = open_model(onnx_file)
    assert isinstance(predictor, OnnxModel)
    got = torch.cat([torch.from_numpy(predictor.probabilities(inputs[i:i + 2500].numpy()))
                     for i in range(0, len(inputs), 2500)])
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert (got - expected).abs().max().item() < 1e-5
    assert predictor.properties["lenet.step"] == str(from_dir.info.step) and predictor.info == from_dir.info
    assert predictor.properties["lenet.input_format"] == INPUT_FORMAT
    assert json.loads(predictor.properties["lenet.recipe"])["model"] == "fast-cnn"


def test_an_onnx_export_declines_exactly_what_its_model_directory_declines(mnist_model_dir, onnx_file, mnist):
    from lenet.negatives import negative_inputs
    from_dir, from_onnx = open_model(mnist_model_dir[0], precision="fp32"), open_model(onnx_file)
    assert from_onnx.has_gate == from_dir.has_gate is True
    assert (from_onnx.temperature, from_onnx.min_confidence) == (from_dir.temperature, from_dir.min_confidence)
    inputs = np.concatenate([mnist.test_images[:300].numpy().astype(np.float32) / 255,
                             negative_inputs(100, "held-out", 0)[0]])
    directory, export = from_dir.scores(inputs), from_onnx.scores(inputs)
    assert np.abs(directory.digit_probabilities - export.digit_probabilities).max() < 1e-5
    assert np.abs(directory.probabilities - export.probabilities).max() < 1e-5
    threshold = from_dir.min_confidence
    assert (declined(directory, threshold) == declined(export, threshold)).all()
    assert declined(directory, threshold)[300:].mean() > declined(directory, threshold)[:300].mean()


def test_predict_accepts_an_onnx_file_in_place_of_a_model_directory(mnist_model_dir, onnx_file, capsys):
    assert main(["predict", "--model-dir", str(mnist_model_dir[0]), "examples/seven.png", "--json",
                 "--precision", "fp32"]) == 0
    from_dir = json.loads(capsys.readouterr().out)
    assert main(["predict", "--model", str(onnx_file), "examples/seven.png", "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert from_onnx["class"] == from_dir["class"] == 7
    assert np.allclose(from_onnx["probabilities"], from_dir["probabilities"], atol=1e-5)


def test_torch_export_round_trip_uses_the_moving_average_weights(synthetic_model_dir, synthetic, tmp_path, capsys):
    path = tmp_path / "mlp.pt2"
    assert main(["export", "--model-dir", str(synthetic_model_dir), "--format", "pt2", "-o", str(path)]) == 0
    extra = {"lenet.json": ""}
    loaded = torch.export.load(str(path), extra_files=extra).module()
    metadata = json.loads(extra["lenet.json"])
    assert metadata["lenet.evaluation_weights"] == "moving_average" and metadata["lenet.model"] == "mlp"
    model, _ = load_model(synthetic_model_dir)
    images = synthetic.test_images.float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(loaded(images), model(images), atol=1e-6)
        assert loaded(images[:1]).shape == (1, 10)  # the batch dimension is free, down to one image


def test_a_convolutional_network_exports_with_a_free_batch_dimension(mnist_model_dir, tmp_path):
    path = export_model(mnist_model_dir[0], "pt2", tmp_path / "cnn.pt2")
    loaded = torch.export.load(str(path)).module()
    model, _ = load_model(mnist_model_dir[0])
    images = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(loaded(images), model(images), atol=1e-5)
        assert torch.allclose(loaded(images[:1]), model(images[:1]), atol=1e-5)


# PyTorch 2.13 deprecates torch.jit.save/load; lenet still offers the format (prefer onnx or pt2).
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_round_trip_uses_the_moving_average_weights(synthetic_model_dir, synthetic, tmp_path):
    path = export_model(synthetic_model_dir, "torchscript", tmp_path / "mlp.pt")
    extra = {"lenet.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["lenet.json"])["lenet.evaluation_weights"] == "moving_average"
    model, _ = load_model(synthetic_model_dir)
    images = synthetic.test_images.float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(loaded(images), model(images), atol=1e-6)
        assert loaded(images[:3]).shape == (3, 10)  # the batch dimension is free


def test_a_bad_onnx_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert main(["predict", "--model", str(tmp_path / "bad.onnx"), "examples/seven.png"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.onnx" in err


def test_an_onnx_export_must_be_named_so_that_lenet_knows_it(synthetic_model_dir, tmp_path, capsys):
    target = tmp_path / "model.txt"
    assert main(["export", "--model-dir", str(synthetic_model_dir), "--format", "onnx", "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"lenet: error: {target}: an ONNX export's name must end in .onnx, " \
                  f"which tells lenet it from a model directory"
    assert not list(tmp_path.iterdir())


def _linear_onnx(path, classes: int, metadata: dict[str, str]) -> None:
    """An ONNX file from elsewhere: (N, 1, 28, 28) -> (N, CLASSES) by one matrix, with METADATA."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = numpy_helper.from_array(np.full((784, classes), 0.01, np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 784], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], initializer=[weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def test_an_onnx_file_with_other_than_ten_outputs_is_refused_when_loaded(tmp_path, capsys):
    _linear_onnx(tmp_path / "five.onnx", 5, {})
    assert main(["predict", "--model", str(tmp_path / "five.onnx"), "examples/seven.png"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "five.onnx: expected one output of shape (N, 10)" in err


def test_unreadable_lenet_metadata_of_an_onnx_file_is_reported_as_unknown(tmp_path):
    _linear_onnx(tmp_path / "odd.onnx", 10, {"lenet.step": "abc", "lenet.recipe": "{bad", "lenet.model": "m"})
    predictor = open_model(tmp_path / "odd.onnx")  # what eval, ensemble, predict and serve open
    assert predictor.probabilities(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)
    info = predictor.info.to_dict()  # GET /model of `lenet serve`
    assert (info["model"], info["recipe"], info["step"], info["test_accuracy"]) == ("m", None, None, None)
    logits = predictor.logits(torch.zeros(3, 28, 28, dtype=torch.uint8))
    assert logits.shape == (3, 10) and predictor.info.step is None


def test_eval_of_an_onnx_file_matches_eval_of_its_model_directory(mnist_model_dir, onnx_file, capsys):
    assert main(["eval", "--model-dir", str(mnist_model_dir[0]), "--json", "--no-tensorboard", "--precision", "fp32"]) == 0
    from_dir = json.loads(capsys.readouterr().out)
    assert main(["eval", "--model", str(onnx_file), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert from_onnx["step"] == from_dir["step"] and from_onnx["examples"] == 10_000
    assert from_onnx["confusion"] == from_dir["confusion"]
    assert abs(from_onnx["loss"] - from_dir["loss"]) < 1e-4


def test_eval_of_an_onnx_file_refuses_what_only_a_model_directory_has(onnx_file, capsys):
    assert main(["eval", "--model", str(onnx_file), "--watch"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cnn.onnx" in err and "--watch" in err


def test_an_onnx_export_of_a_model_of_clothes_names_its_classes_and_refuses_mnist(fashion_model_dir, mnist, tmp_path,
                                                                                  capsys):
    from lenet.datasets import FASHION_MNIST_CLASSES
    from lenet.evaluation import evaluate_model
    path = export_model(fashion_model_dir[0], "onnx", tmp_path / "fashion.onnx")
    predictor = open_model(path)
    assert json.loads(predictor.properties["lenet.classes"]) == list(FASHION_MNIST_CLASSES)
    assert predictor.properties["lenet.dataset"] == "fashion-mnist" and "Fashion-MNIST" in predictor.info.input_format
    assert predictor.info == open_model(fashion_model_dir[0]).info
    with pytest.raises(LenetError, match="fashion.onnx: a model of fashion-mnist, given mnist data"):
        evaluate_model(predictor, mnist)


def test_an_onnx_file_with_non_finite_weights_is_refused_when_opened(onnx_file, tmp_path, capsys):
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(onnx_file)
    weights = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    damaged = numpy_helper.to_array(weights).copy()
    damaged.flat[7] = np.inf
    weights.CopyFrom(numpy_helper.from_array(damaged, weights.name))
    onnx.save(proto, tmp_path / "damaged.onnx")
    for command in (["predict", "--model", str(tmp_path / "damaged.onnx"), "examples/seven.png"],
                    ["eval", "--model", str(tmp_path / "damaged.onnx")]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err == f"lenet: error: {tmp_path / 'damaged.onnx'}: {weights.name} holds NaN or infinite values\n"


def test_a_non_finite_test_accuracy_in_an_onnx_file_is_treated_as_absent(onnx_file, tmp_path):
    import onnx
    proto = onnx.load(onnx_file)
    for prop in proto.metadata_props:
        if prop.key == "lenet.test_accuracy":
            prop.value = "nan"
    onnx.save(proto, tmp_path / "nan.onnx")
    assert open_model(tmp_path / "nan.onnx").info.to_dict()["test_accuracy"] is None


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_an_export_never_writes_over_a_model_directorys_files_or_a_file_of_another_kind(synthetic_model_dir, tmp_path,
                                                                                         capsys):
    import shutil
    model_dir = tmp_path / "m"
    shutil.copytree(synthetic_model_dir, model_dir)
    before = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    checkpoint = model_dir / "model-00000060.safetensors"
    for target in (checkpoint, model_dir / "recipe.json", model_dir / "events" / "train" / "x.pt"):
        assert main(["export", "--model-dir", str(model_dir), "--format", "torchscript", "-o", str(target)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"lenet: error: {target}: ") and "refused" in err
    assert {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()} == before
    assert open_model(model_dir).info.step == 60
    # Outside a model directory: an existing file is replaced only by an export of its own format.
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    assert main(["export", "--model-dir", str(model_dir), "--format", "torchscript", "-o", str(notes)]) == 1
    assert capsys.readouterr().err.strip() == (f"lenet: error: {notes}: exists and is not a TorchScript archive "
                                               f"(lenet writes over an earlier one only); refused, choose another "
                                               f"name or remove the file")
    assert notes.read_text() == "{}"
    exported = tmp_path / "model.pt"
    for _ in range(2):  # the second writes over the first
        assert main(["export", "--model-dir", str(model_dir), "--format", "torchscript", "-o", str(exported)]) == 0
    assert main(["export", "--model-dir", str(model_dir), "--format", "pt2", "-o", str(exported)]) == 1
    assert "exists and is not a torch.export archive" in capsys.readouterr().err


def test_a_model_directory_whose_newest_checkpoint_an_export_destroyed_opens_the_one_before(tmp_path, synthetic,
                                                                                            capsys):
    from test_checkpoint import two_checkpoints
    two_checkpoints(tmp_path, synthetic)
    (tmp_path / "model-00000006.safetensors").write_bytes(b"PK\x03\x04 what an old lenet wrote there")
    onnx = tmp_path.parent / f"{tmp_path.name}.onnx"
    assert main(["export", "--model-dir", str(tmp_path), "--format", "onnx", "-o", str(onnx)]) == 0
    assert capsys.readouterr().err.startswith(f"lenet: warning: {tmp_path}: checkpoint 6 is damaged (")
    assert open_model(onnx).info.step == 4
