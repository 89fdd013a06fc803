import dataclasses
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import synthetic_mnist
from lenet.evaluation import evaluate_model
from lenet.recipes import get_recipe, override
from lenet.tensorboard import GRADIENT_PREFIX, LOG_SCALARS, VALIDATION_ACCURACY
from lenet.training import train


def _read(run_dir):
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("events")
    recipe = override(get_recipe("tutorial-cnn"), total_steps=40, batch_size=20, optimizer="adam",
                      learning_rate=1e-3, l2_rate=1e-3, log_every_steps=10, eval_every_steps=20,
                      checkpoint_every_steps=40)
    events = []
    # Validation labels shifted by one class: validation then always gets images wrong, so the
    # misclassified-image grid must be written.
    data = synthetic_mnist(200)
    data = dataclasses.replace(data, val_labels=(data.val_labels + 1) % 10)
    train(recipe, model_dir, data, report=events.append, histogram_every_steps=20)
    return model_dir, events


def test_training_scalars_match_the_training_log(logged_run):
    model_dir, events = logged_run
    logs = [e for e in events if e["kind"] == "log"]
    run = _read(model_dir / "events" / "train")
    tags = set(run.Tags()["scalars"])
    assert set(LOG_SCALARS.values()) | {VALIDATION_ACCURACY} <= tags
    assert {GRADIENT_PREFIX + layer for layer in ("conv1", "conv2", "fc1", "fc2")} <= tags
    for field, tag in LOG_SCALARS.items():
        written = run.Scalars(tag)
        assert [s.step for s in written] == [e["step"] for e in logs]
        for scalar, log in zip(written, logs):
            assert math.isclose(scalar.value, log[field], rel_tol=1e-5, abs_tol=1e-7), (tag, scalar, log)
    assert all(e["l2_loss"] > 0 for e in logs)  # l2_rate was set: total loss exceeds cross-entropy
    validations = [e for e in events if e["kind"] == "validation"]
    assert [(s.step, round(s.value, 6)) for s in run.Scalars(VALIDATION_ACCURACY)] == \
        [(e["step"], round(e["accuracy"], 6)) for e in validations]


def test_histograms_graph_and_misclassified_images_are_written(logged_run):
    model_dir, _ = logged_run
    run = _read(model_dir / "events" / "train")
    tags = run.Tags()
    assert "weights/conv1.weight" in tags["histograms"] and "gradients/fc2.bias" in tags["histograms"]
    assert [h.step for h in run.Histograms("weights/conv1.weight")] == [20, 40]
    assert tags["graph"]
    assert tags["images"] == ["validation/misclassified (true -> predicted)"]
    images = run.Images(tags["images"][0])
    assert [i.step for i in images] == [20, 40] and images[0].width > 0 and images[0].height > 0


def test_eval_writes_its_results_as_events(logged_run, tmp_path):
    model_dir, _ = logged_run
    result = evaluate_model(model_dir, synthetic_mnist(200), "validation")
    run = _read(model_dir / "events" / "eval-validation")
    accuracy = run.Scalars("eval/accuracy")
    assert [(s.step, round(s.value, 6)) for s in accuracy] == [(40, round(result["accuracy"], 6))]
    assert "eval/loss" in run.Tags()["scalars"] and "eval/recall/3" in run.Tags()["scalars"]


def test_tensorboard_can_be_turned_off(tmp_path):
    recipe = override(get_recipe("mlp-ema"), total_steps=5, batch_size=10, log_every_steps=5,
                      eval_every_steps=5, checkpoint_every_steps=5)
    train(recipe, tmp_path, synthetic_mnist(100), tensorboard=False)
    assert not (tmp_path / "events").exists()
