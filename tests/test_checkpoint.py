import json
from pathlib import Path

import pytest
import torch

from lenet.checkpoint import list_checkpoints, load_model, read_checkpoint, save_checkpoint
from lenet.errors import LenetError
from lenet.models import build_model
from lenet.recipes import get_recipe

SRC = Path(__file__).resolve().parents[1] / "src" / "lenet"


def _save(model_dir, step, keep=2):
    return save_checkpoint(model_dir, step, {"w": torch.full((2,), float(step))}, {"s": torch.zeros(1)},
                           recipe=get_recipe("mlp-ema"), metrics={}, dataset_sha256={}, optimizer={},
                           evaluation_weights="trained", keep=keep)


def test_retention_keeps_the_newest_and_leaves_no_temporary_files(tmp_path):
    for step in (10, 20, 30, 40):
        _save(tmp_path, step)
    assert list_checkpoints(tmp_path) == [30, 40]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-00000030.json", "model-00000030.safetensors", "model-00000040.json", "model-00000040.safetensors",
        "state-00000030.safetensors", "state-00000040.safetensors"]
    checkpoint, weights, state = read_checkpoint(tmp_path)
    assert checkpoint.step == 40 and weights["w"].tolist() == [40.0, 40.0]


def test_tampered_weights_are_refused(tmp_path):
    _save(tmp_path, 1)
    path = tmp_path / "model-00000001.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(LenetError, match="does not match the checksum"):
        read_checkpoint(tmp_path)


def test_empty_directory_and_unknown_step_are_clear_errors(tmp_path):
    with pytest.raises(LenetError, match="no checkpoint found"):
        read_checkpoint(tmp_path)
    _save(tmp_path, 5)
    with pytest.raises(LenetError, match="no checkpoint for step 6"):
        read_checkpoint(tmp_path, 6)


def test_checkpoint_holds_recipe_step_metrics_and_dataset_checksums(synthetic_model_dir):
    sidecar = json.loads(sorted(synthetic_model_dir.glob("model-*.json"))[-1].read_text())
    assert sidecar["step"] == 60 and sidecar["recipe"]["name"] == "mlp-ema"
    assert {"validation_accuracy", "test_accuracy"} <= set(sidecar["metrics"])
    assert sidecar["dataset_sha256"] and sidecar["evaluation_weights"] == "moving_average"
    _, _, state = read_checkpoint(synthetic_model_dir)
    assert "rng.cpu" in state and any(k.startswith("raw.") for k in state)
    model, _ = load_model(synthetic_model_dir)
    assert not model.training and isinstance(model, type(build_model("mlp")))


def test_weights_that_do_not_fit_the_network_are_refused(tmp_path, synthetic_model_dir):
    sidecar = sorted(synthetic_model_dir.glob("model-*.json"))[-1]
    metadata = json.loads(sidecar.read_text())
    save_checkpoint(tmp_path, 1, {"fc1.weight": torch.zeros(3)}, {}, recipe=get_recipe(metadata["recipe"]["name"]),
                    metrics={}, dataset_sha256={}, optimizer={}, evaluation_weights="trained", keep=1)
    with pytest.raises(LenetError, match="do not fit the network"):
        load_model(tmp_path)


def test_nothing_is_ever_unpickled():
    source = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source
    assert "allow_pickle=True" not in source
