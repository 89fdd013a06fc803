import os
from pathlib import Path

import numpy as np
import pytest

from lenet.errors import LenetError
from lenet.files import OUTPUT_KINDS, check_finite_weights, check_output_path, read_file_bytes, read_json


def test_regular_files_are_read_through_symlinks(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert read_file_bytes(tmp_path / "link") == b"abc"


@pytest.mark.parametrize("kind", ["fifo", "device", "link-to-device", "directory"])
def test_files_that_never_end_or_block_are_refused_before_reading(tmp_path, kind):
    path = Path("/dev/zero") if kind == "device" else tmp_path / "x.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would block until a writer came
    elif kind == "directory":
        path.mkdir()
    elif kind == "link-to-device":
        path.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(LenetError, match=f"^{path}: not a regular file"):
        read_file_bytes(path)
    with pytest.raises(LenetError, match="not a regular file"):
        read_json(path)


def test_files_over_the_limit_are_refused_before_reading(tmp_path):
    (tmp_path / "big").write_bytes(bytes(101))
    with pytest.raises(LenetError, match="101 bytes, over the limit of 100"):
        read_file_bytes(tmp_path / "big", max_bytes=100)


def test_non_finite_weights_are_refused_naming_the_tensor():
    check_finite_weights([("w", np.ones(3))], "model")
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(LenetError, match="^model: b holds NaN or infinite values$"):
            check_finite_weights([("w", np.ones(3)), ("b", np.array([0.0, bad]))], "model")


def _model_dir(directory):
    """A directory as training leaves it (a checkpoint's files, its recipe, lock and events), no weights needed."""
    directory.mkdir()
    for name in ("model-00000010.json", "model-00000010.safetensors", "state-00000010.safetensors",
                 "recipe.json", "train.lock"):
        (directory / name).write_bytes(b"{}")
    (directory / "events" / "train").mkdir(parents=True)
    return directory


@pytest.mark.parametrize("name, kind", [
    ("model-00000010.safetensors", "torchscript"), ("model-00000010.json", "pt2"),
    ("state-00000010.safetensors", "onnx"),
    ("model-00000020.pt", "torchscript"),  # a checkpoint's name, though none has that step yet
    ("recipe.json", "png"), ("train.lock", "png"), ("events/train/x.png", "png"), ("events/x.png", "png")])
def test_a_model_directorys_own_files_are_never_an_output(tmp_path, name, kind):
    model_dir = _model_dir(tmp_path / "m")
    with pytest.raises(LenetError, match=f"^{tmp_path / 'm' / name}: .*model directory {model_dir}.*; refused"):
        check_output_path(model_dir / name, kind)
    link = tmp_path / "link"  # the same directory through a symlink is the same directory
    link.symlink_to(model_dir)
    with pytest.raises(LenetError, match="refused"):
        check_output_path(link / name, kind)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_an_existing_file_is_replaced_only_by_one_of_its_kind(tmp_path):
    from lenet.export import export_program, export_torchscript
    from lenet.models import build_model
    network = build_model("mlp")
    written = {"a.pt": export_torchscript(network, {}), "a.pt2": export_program(network, {}),
               "a.png": b"\x89PNG\r\n\x1a\n" + bytes(20),
               "a.onnx": b"\x08\x0a\x12\x07pytorch",  # how torch.onnx.export's files begin
               "a.idx": bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]), "a.json": b"{}",
               "a.safetensors": (264).to_bytes(8, "little") + b"{}",  # its header length's first byte is 08
               "empty": b""}
    for name, payload in written.items():
        (tmp_path / name).write_bytes(payload)
    allowed = {("a.pt", "torchscript"), ("a.pt2", "pt2"), ("a.png", "png"), ("a.onnx", "onnx"), ("a.idx", "idx")}
    for name in written:
        for kind in OUTPUT_KINDS:
            path = tmp_path / name
            if (name, kind) in allowed or name == "empty":  # an empty file holds nothing to lose
                assert check_output_path(path, kind) == path
            else:
                with pytest.raises(LenetError, match=f"^{path}: exists and is not a {OUTPUT_KINDS[kind]} "):
                    check_output_path(path, kind)
    assert check_output_path(tmp_path / "new.pt", "torchscript") == tmp_path / "new.pt"
    # The same names in a directory that is no model directory are anybody's.
    assert check_output_path(tmp_path / "model-00000010.onnx", "onnx") == tmp_path / "model-00000010.onnx"


@pytest.mark.parametrize("target", ["/dev/null", "directory", "under-a-file"])
def test_a_device_a_directory_or_a_path_under_a_file_is_no_output(tmp_path, target):
    (tmp_path / "directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    path = {"/dev/null": Path("/dev/null"), "directory": tmp_path / "directory",
            "under-a-file": tmp_path / "a-file" / "x.png"}[target]
    with pytest.raises(LenetError, match="is not a regular file|is a file, not a directory") as error:
        check_output_path(path, "png")
    assert str(path) in str(error.value) and "\n" not in str(error.value)
