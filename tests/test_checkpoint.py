import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.checkpoint import list_checkpoints, load_model, read_checkpoint, save_checkpoint
from lenet.errors import LenetError
from lenet.models import build_model
from lenet.recipes import Recipe, get_recipe

SRC = Path(__file__).resolve().parents[1] / "src" / "lenet"


def _save(model_dir, step, keep=2):
    return save_checkpoint(model_dir, step, {"w": torch.full((2,), float(step))}, {"s": torch.zeros(1)},
                           recipe=get_recipe("mlp-ema"), metrics={}, dataset_sha256={}, classes=tuple("0123456789"),
                           optimizer={}, evaluation_weights="trained", keep=keep)


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
                    metrics={}, dataset_sha256={}, classes=tuple("0123456789"), optimizer={},
                    evaluation_weights="trained", keep=1)
    with pytest.raises(LenetError, match="do not fit the network"):
        load_model(tmp_path)


def test_nothing_is_ever_unpickled():
    source = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source
    assert "allow_pickle=True" not in source


def _trained(tmp_path, synthetic, recipe="deep-mnist", steps=4):
    from lenet.recipes import override
    from lenet.training import train
    chosen = override(get_recipe(recipe), total_steps=steps, batch_size=20, log_every_steps=2,
                      eval_every_steps=4, checkpoint_every_steps=4)
    train(chosen, tmp_path, synthetic, tensorboard=False)
    return chosen


def test_a_hand_edited_recipe_json_that_disagrees_with_the_checkpoint_is_refused(tmp_path, synthetic):
    from lenet.checkpoint import resolve_recipe
    from lenet.training import train
    _trained(tmp_path, synthetic)
    recipe_file = tmp_path / "recipe.json"
    edited = {**json.loads(recipe_file.read_text()), "learning_rate": 0.5}
    recipe_file.write_text(json.dumps(edited))
    with pytest.raises(LenetError, match="recipe.json and checkpoint 4 disagree on learning_rate"):
        train(resolve_recipe(tmp_path, None, total_steps=6), tmp_path, synthetic, tensorboard=False)
    assert list_checkpoints(tmp_path) == [4]


def test_a_directory_whose_recipe_json_was_deleted_is_refused_and_nothing_is_written(tmp_path, synthetic):
    from lenet.checkpoint import resolve_recipe
    from lenet.training import train
    _trained(tmp_path, synthetic)
    (tmp_path / "recipe.json").unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LenetError, match="has checkpoints but no recipe.json"):
        train(resolve_recipe(tmp_path, None, total_steps=6), tmp_path, synthetic, tensorboard=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory, synthetic):
    """A short deep-mnist run (Adam, whose exp_avg has each parameter's shape), trained once for the module."""
    model_dir = tmp_path_factory.mktemp("adam-run")
    return model_dir, _trained(model_dir, synthetic)


@pytest.mark.parametrize("damage", ["no rng", "float rng", "wrong shape", "unknown parameter", "2-d rng", "int8 moment",
                                    "float16 moment", "unknown key", "string lr", "short betas"])
def test_a_damaged_resume_state_is_a_one_line_error(tmp_path, synthetic, adam_run, damage):
    import shutil
    from safetensors.torch import load_file, save_file
    from lenet.training import train
    shutil.copytree(adam_run[0], tmp_path, dirs_exist_ok=True)  # each damage on its own copy of one run
    recipe = adam_run[1]
    state_file = tmp_path / "state-00000004.safetensors"
    state = load_file(state_file)
    if damage == "no rng":
        del state["rng.cpu"]
    elif damage == "float rng":
        state["rng.cpu"] = state["rng.cpu"].float()
    elif damage == "wrong shape":
        state["optimizer.0.exp_avg"] = torch.zeros(3)
    elif damage == "unknown parameter":
        state["optimizer.99.exp_avg"] = torch.zeros(3)
    elif damage == "2-d rng":  # torch accepted it, and a resumed run drew other numbers than the first
        state["rng.cpu"] = state["rng.cpu"].reshape(1, -1).clone()
    elif damage in ("int8 moment", "float16 moment"):  # torch cast them silently
        state["optimizer.0.exp_avg"] = state["optimizer.0.exp_avg"].to(torch.int8 if "int8" in damage else torch.half)
    elif damage == "unknown key":
        state["junk"] = torch.zeros(1)
    else:  # the optimizer's settings in the sidecar: torch takes any JSON value for them
        sidecar = tmp_path / "model-00000004.json"
        metadata = json.loads(sidecar.read_text())
        metadata["optimizer"]["param_groups"][0].update({"lr": "0.1"} if damage == "string lr" else {"betas": [0.9]})
        sidecar.write_text(json.dumps(metadata))
    save_file(state, state_file)
    with pytest.raises(LenetError, match="the resume state is damaged"):
        train(dataclasses_replace(recipe, total_steps=6), tmp_path, synthetic, tensorboard=False)


def dataclasses_replace(recipe, **changes):
    import dataclasses
    return dataclasses.replace(recipe, **changes)


def test_weights_of_another_type_or_not_finite_are_refused(tmp_path, synthetic):
    from safetensors.torch import load_file, save_file
    _trained(tmp_path, synthetic, "mlp-ema")
    weights_file = tmp_path / "model-00000004.safetensors"
    sidecar = tmp_path / "model-00000004.json"
    original = load_file(weights_file)
    for damaged, message in (({**original, "fc1.bias": original["fc1.bias"].to(torch.int8)}, "is torch.int8"),
                             ({**original, "fc1.bias": original["fc1.bias"].bool()}, "is torch.bool"),
                             # not cast either: a float16 file is not one lenet wrote
                             ({**original, "fc1.bias": original["fc1.bias"].half()}, "is torch.float16"),
                             ({**original, "fc1.bias": original["fc1.bias"] * float("nan")}, "NaN or infinite")):
        save_file(damaged, weights_file)
        metadata = json.loads(sidecar.read_text())  # the checksum recomputed, so the check behind it is reached
        metadata["weights_sha256"] = hashlib.sha256(weights_file.read_bytes()).hexdigest()
        sidecar.write_text(json.dumps(metadata))
        with pytest.raises(LenetError, match=message):
            load_model(tmp_path)


@pytest.mark.parametrize("field, value, message", [
    ("step", "4", "field step is missing or not int"), ("step", 4.0, "field step"), ("step", -4, "says step -4"),
    ("step", 10 ** 30, "says step"), ("metrics", [], "field metrics"), ("optimizer", "x", "field optimizer"),
    ("temperature", "hot", "field temperature must be a number"), ("temperature", 0, "field temperature"),
    ("temperature", 1e9, "field temperature"), ("min_confidence", 1.5, "field min_confidence must be a number from 0 to 1"),
    ("min_confidence", None, "field min_confidence"),
])
def test_a_tampered_sidecar_is_a_one_line_error(tmp_path, synthetic, field, value, message):
    _trained(tmp_path, synthetic, "mlp-ema")
    sidecar = tmp_path / "model-00000004.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), field: value}))
    with pytest.raises(LenetError, match=message):
        read_checkpoint(tmp_path)


def test_a_checkpoint_keeps_the_calibration_fitted_on_the_validation_split(tmp_path, synthetic):
    _trained(tmp_path, synthetic, "mlp-ema")
    sidecar = tmp_path / "model-00000004.json"
    checkpoint = read_checkpoint(tmp_path)[0]
    written = json.loads(sidecar.read_text())
    assert checkpoint.temperature == written["temperature"] != 1.0 and 0.05 <= checkpoint.min_confidence <= 0.9
    # A sidecar written before lenet calibrated: no temperature, the fallback threshold.
    sidecar.write_text(json.dumps({k: v for k, v in written.items() if k not in ("temperature", "min_confidence")}))
    checkpoint = read_checkpoint(tmp_path)[0]
    assert (checkpoint.temperature, checkpoint.min_confidence) == (1.0, 0.5)


def test_deeply_nested_or_huge_json_is_a_one_line_error(tmp_path, synthetic):
    _trained(tmp_path, synthetic, "mlp-ema")
    sidecar = tmp_path / "model-00000004.json"
    for text in ("[" * 100_000, '{"step": ' + "9" * 5000 + "}"):
        sidecar.write_text(text)
        with pytest.raises(LenetError, match="not valid JSON"):
            read_checkpoint(tmp_path)


def test_half_written_files_of_a_killed_run_are_removed_by_the_next(tmp_path, synthetic):
    _trained(tmp_path, synthetic, "mlp-ema")
    stale = [tmp_path / ".model-00000006.json.a1b2.tmp", tmp_path / ".state-00000006.safetensors.x.tmp",
             tmp_path / ".recipe.json.q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (tmp_path / ".notes.tmp").write_text("the user's own")
    _trained(tmp_path, synthetic, "mlp-ema", steps=6)
    assert not any(path.exists() for path in stale) and (tmp_path / ".notes.tmp").exists()


def test_a_model_directory_from_before_data_sets_is_a_model_of_mnist(tmp_path, synthetic_model_dir):
    import shutil

    from lenet.inference import open_model
    old = tmp_path / "old"
    shutil.copytree(synthetic_model_dir, old)
    # As lenet wrote them before it recorded the data set: no dataset field, no class names.
    for path in [old / "recipe.json", *old.glob("model-*.json")]:
        payload = json.loads(path.read_text())
        payload.pop("classes", None)
        (payload.get("recipe", payload)).pop("dataset")
        path.write_text(json.dumps(payload))
    model = open_model(old)
    assert model.info.dataset == "mnist" and model.info.classes == tuple("0123456789")
    assert model.probabilities(np.zeros((1, 28, 28), np.float32)).shape == (1, 10)


def test_half_written_files_of_a_killed_run_are_removed_by_the_next_run(tmp_path, synthetic):
    from lenet.training import train
    recipe = _trained(tmp_path, synthetic, "mlp-ema")
    stale = [tmp_path / ".model-00000008.safetensors.k2j3.tmp", tmp_path / ".state-00000008.safetensors.x.tmp",
             tmp_path / ".model-00000008.json.q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (tmp_path / ".mine.tmp").write_bytes(b"not lenet's")  # a name lenet never writes is left alone
    train(dataclasses_replace(recipe, total_steps=6), tmp_path, synthetic, tensorboard=False)
    assert not any(path.exists() for path in stale) and (tmp_path / ".mine.tmp").exists()


def two_checkpoints(tmp_path, synthetic):
    """A trained mlp-ema directory holding checkpoints 4 and 6; returns its recipe."""
    from lenet.recipes import override
    from lenet.training import train
    recipe = override(get_recipe("mlp-ema"), total_steps=6, batch_size=20, log_every_steps=2, eval_every_steps=6,
                      checkpoint_every_steps=2, keep_checkpoints=2)
    train(recipe, tmp_path, synthetic, tensorboard=False)
    assert list_checkpoints(tmp_path) == [4, 6]
    return recipe


def damage(path):
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")


def test_a_damaged_newest_checkpoint_is_passed_over_for_the_newest_intact_one_saying_so(tmp_path, synthetic):
    from lenet.inference import open_model
    two_checkpoints(tmp_path, synthetic)
    damage(tmp_path / "model-00000006.safetensors")
    model = open_model(tmp_path)
    assert model.info.step == 4 and len(model.warnings) == 1
    assert model.warnings[0].startswith(f"{tmp_path}: checkpoint 6 is damaged (")
    assert "does not match the checksum" in model.warnings[0] and model.warnings[0].endswith("); using 4")
    assert open_model(tmp_path, step=4).warnings == ()  # a step asked for is that step or an error
    with pytest.raises(LenetError, match="does not match the checksum"):
        open_model(tmp_path, step=6)


def test_when_every_checkpoint_is_damaged_the_newests_error_is_raised(tmp_path, synthetic):
    from lenet.inference import open_model
    two_checkpoints(tmp_path, synthetic)
    damage(tmp_path / "model-00000006.safetensors")
    sidecar = tmp_path / "model-00000004.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "step": "4"}))
    with pytest.raises(LenetError, match="model-00000006.safetensors: missing or does not match the checksum"):
        open_model(tmp_path)


def test_resuming_never_falls_back_to_an_older_checkpoint(tmp_path, synthetic):
    # Resuming from checkpoint 4 would silently drop the steps trained since: the run is refused instead.
    from lenet.training import train
    recipe = two_checkpoints(tmp_path, synthetic)
    damage(tmp_path / "model-00000006.safetensors")
    with pytest.raises(LenetError, match="model-00000006.safetensors: missing or does not match the checksum"):
        train(dataclasses_replace(recipe, total_steps=8), tmp_path, synthetic, tensorboard=False)
    assert list_checkpoints(tmp_path) == [4, 6]


def prune_on_first_read(monkeypatch, model_dir, which):
    """Make the first read of a checkpoint's WHICH file ("json" or "safetensors") come just after a training
    run (keep_checkpoints 1) wrote checkpoint 8 and pruned the others: listed, then gone. Returns the names
    of the files whose read was so delayed."""
    import lenet.checkpoint
    import lenet.files
    from safetensors.torch import load_file
    pruned = []

    def read_after_a_prune(path, *args, **kwargs):
        name = Path(path).name
        if not pruned and name.startswith("model-") and name.endswith(which):
            pruned.append(name)
            newest = list_checkpoints(model_dir)[-1]
            sidecar = json.loads((model_dir / f"model-{newest:08d}.json").read_text())
            save_checkpoint(model_dir, 8, load_file(model_dir / f"model-{newest:08d}.safetensors"),
                            load_file(model_dir / f"state-{newest:08d}.safetensors"),
                            recipe=Recipe.from_dict(sidecar["recipe"], "sidecar"), metrics={},
                            dataset_sha256=sidecar["dataset_sha256"], classes=tuple(sidecar["classes"]),
                            optimizer=sidecar["optimizer"], evaluation_weights=sidecar["evaluation_weights"], keep=1)
        return original(path, *args, **kwargs)

    original = lenet.files.read_file_bytes
    monkeypatch.setattr(lenet.files, "read_file_bytes", read_after_a_prune)  # read_json's
    monkeypatch.setattr(lenet.checkpoint, "read_file_bytes", read_after_a_prune)
    return pruned


@pytest.mark.parametrize("which", ["json", "safetensors"])
@pytest.mark.parametrize("reader", ["open_model", "serve"])
def test_a_checkpoint_pruned_between_listing_and_reading_is_looked_for_again(tmp_path, synthetic, monkeypatch,
                                                                              which, reader):
    from lenet.inference import open_model
    two_checkpoints(tmp_path, synthetic)
    pruned = prune_on_first_read(monkeypatch, tmp_path, which)
    if reader == "open_model":
        step = open_model(tmp_path).info.step
    else:  # the server opens its model as it starts
        import asyncio

        from lenet.serving.app import create_app
        from lenet.testing.fuzz_requests import asgi_request
        status, _, body = asyncio.run(asgi_request(create_app(tmp_path), "GET", "/model"))
        assert status == 200
        step = json.loads(body)["step"]
    assert pruned == [f"model-00000006.{which}"] and list_checkpoints(tmp_path) == [8] and step == 8


def test_a_step_asked_for_and_pruned_meanwhile_is_a_one_line_error(tmp_path, synthetic, monkeypatch):
    from lenet.inference import open_model
    two_checkpoints(tmp_path, synthetic)
    prune_on_first_read(monkeypatch, tmp_path, "safetensors")
    with pytest.raises(LenetError, match=r"no checkpoint for step 6; available: \[8\]"):
        open_model(tmp_path, step=6)


def test_class_names_with_control_characters_in_a_sidecar_are_refused(tmp_path, synthetic):
    _trained(tmp_path, synthetic, "mlp-ema")
    sidecar = tmp_path / "model-00000004.json"
    classes = ["zero", "o\x1b[2Jne"] + list("23456789")  # an escape sequence that would clear the terminal
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "classes": classes}))
    with pytest.raises(LenetError, match="field classes: name 1 holds the control character U\\+001B"):
        read_checkpoint(tmp_path)
