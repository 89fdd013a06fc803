import dataclasses
import subprocess
import sys
import math
import threading

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import synthetic_mnist
from lenet.results import StepLogged, Validated
from lenet.evaluation import evaluate_model
from lenet.recipes import get_recipe, override
from lenet.tensorboard import GRADIENT_PREFIX, LOG_SCALARS, VALIDATION_ACCURACY, TrainingEvents
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
    logs = [e for e in events if isinstance(e, StepLogged)]
    run = _read(model_dir / "events" / "train")
    tags = set(run.Tags()["scalars"])
    assert set(LOG_SCALARS.values()) | {VALIDATION_ACCURACY} <= tags
    assert {GRADIENT_PREFIX + layer for layer in ("conv1", "conv2", "fc1", "fc2")} <= tags
    for field, tag in LOG_SCALARS.items():
        written = run.Scalars(tag)
        assert [s.step for s in written] == [e.step for e in logs]
        for scalar, log in zip(written, logs):
            assert math.isclose(scalar.value, getattr(log, field), rel_tol=1e-5, abs_tol=1e-7), (tag, scalar, log)
    assert all(e.l2_loss > 0 for e in logs)  # l2_rate was set: total loss exceeds cross-entropy
    validations = [e for e in events if isinstance(e, Validated)]
    assert [(s.step, round(s.value, 6)) for s in run.Scalars(VALIDATION_ACCURACY)] == \
        [(e.step, round(e.accuracy, 6)) for e in validations]


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
    assert [(s.step, round(s.value, 6)) for s in accuracy] == [(40, round(result.metrics.accuracy, 6))]
    assert "eval/loss" in run.Tags()["scalars"] and "eval/recall/3" in run.Tags()["scalars"]


def test_tensorboard_can_be_turned_off(tmp_path):
    recipe = override(get_recipe("mlp-ema"), total_steps=5, batch_size=10, log_every_steps=5,
                      eval_every_steps=5, checkpoint_every_steps=5)
    train(recipe, tmp_path, synthetic_mnist(100), tensorboard=False)
    assert not (tmp_path / "events").exists()


# `lenet train` with every TensorBoard write failing as on a full disk (in a subprocess: pytest
# replaces threading.excepthook within tests, and the writer thread's traceback is what is checked).
_DISK_FULL_TRAIN = """
import errno, sys
from tensorboard.summary.writer.record_writer import RecordWriter
written, write = [], RecordWriter.write
def full(self, data):  # the first events go in (the file's header), then the disk is full
    written.append(data)
    if len(written) > 2:
        raise OSError(errno.ENOSPC, "No space left on device")
    write(self, data)
RecordWriter.write = full
from lenet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_under_tensorboard_is_one_line_naming_the_events_directory(mnist, tmp_path):
    model_dir = tmp_path / "m"
    completed = subprocess.run([sys.executable, "-c", _DISK_FULL_TRAIN, "train", "--recipe", "mlp-ema",
                                "--model-dir", str(model_dir), "--steps", "20", "--log-every-steps", "5"],
                               capture_output=True, text=True, timeout=300)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 1 and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert lines[-1] == (f"lenet: error: {model_dir / 'events' / 'train'}: cannot write TensorBoard events "
                         f"(No space left on device); free some space or run with --no-tensorboard")
    assert len(lines) == 1


def test_importing_lenet_tensorboard_leaves_the_threading_excepthook_alone():
    # In a fresh interpreter: this one has imported lenet.tensorboard long ago.
    code = ("import threading; before = threading.excepthook; import lenet.tensorboard; "
            "print(threading.excepthook is before)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


def test_the_writer_threads_failures_are_kept_quiet_only_while_the_events_are_open(tmp_path):
    before = threading.excepthook
    events = TrainingEvents(tmp_path, 0)
    try:
        assert threading.excepthook is not before
    finally:
        events.close()
    assert threading.excepthook is before
