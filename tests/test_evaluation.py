import dataclasses
import json
import shutil
import threading
import time

import pytest
import torch

from conftest import synthetic_mnist
from lenet.augment import shifted
from lenet.checkpoint import load_model, save_checkpoint
from lenet.cli import main
from lenet.data import to_float
from lenet.errors import LenetError
from lenet.evaluation import confusion_matrix, evaluate_ensemble, evaluate_model, metrics_from_logits, watch_checkpoints
from lenet.inference import CPU_INFERENCE_BATCH, batched_logits
from lenet.recipes import get_recipe, override
from lenet.training import train


def test_metrics_against_a_hand_worked_example():
    labels = torch.tensor([0, 0, 1, 1, 2])
    # Predictions 0, 1, 1, 1, 0: row-wise argmax of these logits; class 2's second choice is 2.
    logits = torch.tensor([[3.0, 1, 0], [1, 3, 0], [0, 3, 1], [0, 2, 1], [2, 0, 1]])
    result = metrics_from_logits(logits, labels, top_k=2).to_json()
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["top_2_accuracy"] == pytest.approx(1.0)
    per_class = {row["class"]: row for row in result["per_class"]}
    assert per_class[0]["precision"] == pytest.approx(1 / 2) and per_class[0]["recall"] == pytest.approx(1 / 2)
    assert per_class[1]["precision"] == pytest.approx(2 / 3) and per_class[1]["recall"] == pytest.approx(1.0)
    assert per_class[2]["precision"] == 0.0 and per_class[2]["recall"] == 0.0
    expected_loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert result["loss"] == pytest.approx(expected_loss)


def test_confusion_matrix_rows_are_true_classes():
    assert confusion_matrix(torch.tensor([2]), torch.tensor([0]), 3).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]


def test_evaluate_checkpoint_reports_step_and_split(synthetic_model_dir, synthetic):
    result = evaluate_model(synthetic_model_dir, synthetic, "validation").to_json()
    assert result["step"] == 60 and result["split"] == "validation"
    assert result["examples"] == len(synthetic.val_labels)
    assert sum(map(sum, result["confusion"])) == len(synthetic.val_labels)


def test_top_k_is_checked_once_per_evaluation(synthetic_model_dir, synthetic, monkeypatch):
    import lenet.evaluation
    checked = []
    check = lenet.evaluation.check_top_k
    monkeypatch.setattr(lenet.evaluation, "check_top_k", lambda *args, **kwargs: checked.append(args) or
                        check(*args, **kwargs))
    assert "top_2_accuracy" in evaluate_model(synthetic_model_dir, synthetic, top_k=2, tensorboard=False).to_json()
    assert checked == [(2, 10)]
    checked.clear()
    assert "top_5_accuracy" in evaluate_ensemble([synthetic_model_dir], synthetic).to_json()
    assert checked == [(None, 10)]
    with pytest.raises(LenetError, match="--top-k must be from 1 to 10, got 11"):
        evaluate_model(synthetic_model_dir, synthetic, top_k=11, tensorboard=False)


def test_cpu_inference_runs_in_small_batches_with_the_same_logits(synthetic_model_dir, synthetic):
    model, _ = load_model(synthetic_model_dir)
    images = synthetic.test_images
    done = []
    logits = batched_logits(model, images, progress=lambda n, total: done.append(n))
    assert CPU_INFERENCE_BATCH == 100 and len(images) > 100
    assert done == [*range(100, len(images), 100), len(images)]
    assert torch.allclose(logits, batched_logits(model, images, batch_size=len(images)), atol=1e-5)


def test_test_time_augmentation_averages_the_shifted_views(synthetic_model_dir, synthetic):
    model, _ = load_model(synthetic_model_dir)
    images = to_float(synthetic.test_images[:20])
    with torch.no_grad():
        views = [torch.softmax(model(shifted(images, dy, dx)), 1)
                 for dy, dx in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]]
    expected = torch.stack(views).mean(0)
    assert torch.allclose(batched_logits(model, images, batch_size=7, tta=True).exp(), expected, atol=1e-6)
    assert not torch.allclose(expected, views[0], atol=1e-4)  # the shifts do change the answer
    result = evaluate_model(synthetic_model_dir, synthetic, tta=True, tensorboard=False).to_json()
    assert result["tta"] is True and 0 < result["accuracy"] <= 1


@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory, synthetic):
    model_dir = tmp_path_factory.mktemp("synthetic-mlp-seed-1")
    train(override(get_recipe("mlp-ema"), total_steps=10, batch_size=50, learning_rate=0.1, seed=1,
                   eval_every_steps=10, checkpoint_every_steps=10), model_dir, synthetic, tensorboard=False)
    return model_dir


def test_ensemble_averages_the_members_probabilities(synthetic_model_dir, second_model_dir, synthetic, tmp_path):
    result = evaluate_ensemble([synthetic_model_dir, second_model_dir], synthetic).to_json()
    probabilities = [torch.softmax(batched_logits(load_model(d)[0], synthetic.test_images), 1)
                     for d in (synthetic_model_dir, second_model_dir)]
    expected = ((probabilities[0] + probabilities[1]) / 2).argmax(1)
    assert result["accuracy"] == pytest.approx((expected == synthetic.test_labels).double().mean().item())
    assert [m["step"] for m in result["members"]] == [60, 10]
    for member, p in zip(result["members"], probabilities):
        assert member["accuracy"] == pytest.approx((p.argmax(1) == synthetic.test_labels).double().mean().item())
        assert member["errors"] == (p.argmax(1) != synthetic.test_labels).sum()
    wrong = [p.argmax(1) != synthetic.test_labels for p in probabilities]
    assert result["errors_of_every_member"] == (wrong[0] & wrong[1]).sum()
    # A model with itself: every error is shared (ten labels are made wrong so that there are errors).
    mislabelled = dataclasses.replace(synthetic, test_labels=torch.cat([(synthetic.test_labels[:10] + 1) % 10,
                                                                        synthetic.test_labels[10:]]))
    same_weights = shutil.copytree(second_model_dir, tmp_path / "copy")  # the same directory twice is refused
    twice = evaluate_ensemble([second_model_dir, same_weights], mislabelled).to_json()
    assert twice["errors_of_every_member"] == twice["members"][0]["errors"] >= 10


def test_ensemble_command_prints_members_and_refuses_missing_dirs(synthetic_model_dir, second_model_dir,
                                                                 tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lenet.data.load_dataset", lambda *args, **kwargs: synthetic_mnist())
    assert main(["ensemble", str(synthetic_model_dir), str(second_model_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["members"]) == 2 and result["examples"] == len(synthetic_mnist().test_labels)
    assert main(["ensemble", str(synthetic_model_dir), str(tmp_path / "missing")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "missing: no such model directory" in error
    log_file = tmp_path / "seed-0.log"  # beside model directories, caught by a glob like runs/seed-*
    log_file.write_text("log")
    assert main(["ensemble", str(synthetic_model_dir), str(log_file)]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: {log_file}: a file, not a model directory"
    same_again = str(synthetic_model_dir / ".." / synthetic_model_dir.name)  # would count twice in the mean
    assert main(["ensemble", str(synthetic_model_dir), str(second_model_dir), same_again]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: {same_again}: given twice"


def test_a_model_trained_on_the_validation_images_is_not_measured_on_them(tmp_path, synthetic, synthetic_model_dir,
                                                                           monkeypatch, capsys):
    train(override(get_recipe("mlp-ema"), total_steps=5, batch_size=50, train_on_validation=True,
                   checkpoint_every_steps=5),
          tmp_path, synthetic, tensorboard=False)
    assert evaluate_model(tmp_path, synthetic, "test", tensorboard=False).metrics.examples == 150
    with pytest.raises(LenetError, match=r"trained on the validation images too .*; use --split test$"):
        evaluate_model(tmp_path, synthetic, "validation", tensorboard=False)
    with pytest.raises(LenetError, match="use --split test"):
        evaluate_ensemble([synthetic_model_dir, tmp_path], synthetic, "validation")
    assert evaluate_ensemble([synthetic_model_dir], synthetic, "validation").metrics.examples == 150
    # Watching it: one error at the first checkpoint, not a skipped evaluation at every one.
    monkeypatch.setattr("lenet.data.load_dataset", lambda *args, **kwargs: synthetic)
    assert main(["eval", "--model-dir", str(tmp_path), "--split", "validation", "--watch"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 2 and error[0].startswith("watching") and error[1].endswith("use --split test")


def test_an_ensemble_member_may_be_an_exported_onnx_file(synthetic_model_dir, second_model_dir, synthetic,
                                                         tmp_path):
    from lenet.export import export_model
    onnx_file = export_model(second_model_dir, "onnx", tmp_path / "second.onnx")
    # fp32, the ONNX file's arithmetic, so that both ensembles compute the same figures.
    from_dirs = evaluate_ensemble([synthetic_model_dir, second_model_dir], synthetic, precision="fp32").to_json()
    mixed = evaluate_ensemble([synthetic_model_dir, onnx_file], synthetic, precision="fp32").to_json()
    assert [m["step"] for m in mixed["members"]] == [60, 10]
    assert mixed["confusion"] == from_dirs["confusion"]
    assert mixed["loss"] == pytest.approx(from_dirs["loss"], abs=1e-5)
    with pytest.raises(LenetError, match="second.onnx: --tta"):
        evaluate_ensemble([synthetic_model_dir, onnx_file], synthetic, tta=True)


def test_watch_yields_each_new_checkpoint(tmp_path):
    def save(step):
        save_checkpoint(tmp_path, step, {"w": torch.zeros(1)}, {}, recipe=get_recipe("mlp-ema"), metrics={},
                        dataset_sha256={}, classes=tuple("0123456789"), optimizer={}, evaluation_weights="trained",
                        keep=5)

    save(1)
    watcher = watch_checkpoints(tmp_path, poll_s=0.01)
    assert next(watcher) == 1
    threading.Timer(0.1, save, args=(2,)).start()
    started = time.monotonic()
    assert next(watcher) == 2 and time.monotonic() - started < 5


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf"])
def test_watch_refuses_a_poll_interval_it_cannot_sleep(synthetic_model_dir, capsys, seconds):
    # -1 was a ValueError traceback from time.sleep; 0 polled the directory in a busy loop.
    assert main(["eval", "--model-dir", str(synthetic_model_dir), "--watch", "--poll-seconds", seconds]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: --poll-seconds must be a positive number, got {seconds}"


def test_test_time_augmentation_of_a_very_confident_model_stays_finite(synthetic_model_dir, synthetic):
    model, _ = load_model(synthetic_model_dir)
    with torch.no_grad():
        model.fc2.weight.mul_(1e4)  # logits in the thousands: some views' probabilities underflow to 0
    logits = batched_logits(model, synthetic.test_images[:50], tta=True)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits.exp().sum(1), torch.ones(50), atol=1e-4)  # still the log of a mean probability


def test_eval_reports_the_calibration_and_the_share_declined_beside_accuracy(synthetic_model_dir, synthetic, capsys):
    import numpy as np

    from lenet.calibration import expected_calibration_error
    from lenet.inference import open_model
    result = evaluate_model(synthetic_model_dir, synthetic, "test", tensorboard=False)
    model = open_model(synthetic_model_dir)
    calibration = result.calibration
    assert calibration.temperature == model.temperature and calibration.min_confidence == model.min_confidence
    probabilities = model.probabilities(synthetic.test_images)
    assert calibration.ece == pytest.approx(expected_calibration_error(probabilities, synthetic.test_labels.numpy()))
    confidence, digit = probabilities.max(1), model.scores(synthetic.test_images).digit_probabilities
    below = confidence < model.min_confidence
    if digit is not None:
        below |= digit < model.min_confidence
    assert calibration.declined == pytest.approx(float(np.mean(below)))
    json_answer = result.to_json()
    assert {"temperature", "nll", "ece", "min_confidence", "declined"} <= set(json_answer)
    assert 0 <= json_answer["ece"] <= 1 and json_answer["nll"] > 0
