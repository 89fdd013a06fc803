import threading
import time

import pytest
import torch

from lenet.checkpoint import save_checkpoint
from lenet.evaluation import confusion_matrix, evaluate_checkpoint, metrics_from_logits, watch_checkpoints


def test_metrics_against_a_hand_worked_example():
    labels = torch.tensor([0, 0, 1, 1, 2])
    # Predictions 0, 1, 1, 1, 0: row-wise argmax of these logits; class 2's second choice is 2.
    logits = torch.tensor([[3.0, 1, 0], [1, 3, 0], [0, 3, 1], [0, 2, 1], [2, 0, 1]])
    result = metrics_from_logits(logits, labels, top_k=2)
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
    result = evaluate_checkpoint(synthetic_model_dir, synthetic, "validation")
    assert result["step"] == 60 and result["split"] == "validation"
    assert result["examples"] == len(synthetic.val_labels)
    assert sum(map(sum, result["confusion"])) == len(synthetic.val_labels)


def test_watch_yields_each_new_checkpoint(tmp_path):
    def save(step):
        save_checkpoint(tmp_path, step, {"w": torch.zeros(1)}, {}, {}, keep=5)

    save(1)
    watcher = watch_checkpoints(tmp_path, poll_s=0.01)
    assert next(watcher) == 1
    threading.Timer(0.1, save, args=(2,)).start()
    started = time.monotonic()
    assert next(watcher) == 2 and time.monotonic() - started < 5
