"""Metrics on a labelled split, ensembles, and watching a model directory for new checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .calibration import expected_calibration_error, negative_log_likelihood
from .checkpoint import list_checkpoints, stored_recipe
from .data import Dataset
from .decline import declined
from .errors import LenetError
from .idx import NUM_CLASSES
from .inference import (LoadedModel, Progress, Scores, batched_logits, check_held_out, check_top_k, model_dir_for,
                        open_model)
from .results import Calibration, ClassMetrics, EnsembleEvaluation, Evaluation, MemberResult, Metrics
from .tensorboard import write_eval_events


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Counts with true classes as rows and predicted classes as columns."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_logits(logits: torch.Tensor | np.ndarray, labels: torch.Tensor, top_k: int | None = None,
                        classes: tuple[str, ...] | None = None) -> Metrics:
    """Loss, accuracy, top-k accuracy (k 5 by default), per-class precision/recall and the confusion
    matrix; each class named by CLASSES (by default its number)."""
    return _metrics(logits, labels, check_top_k(top_k, logits.shape[1], default=5), classes)


def _metrics(logits: torch.Tensor | np.ndarray, labels: torch.Tensor, top_k: int,
             classes: tuple[str, ...] | None) -> Metrics:
    """metrics_from_logits for a TOP_K its caller has checked."""
    logits, labels = torch.as_tensor(logits).float().cpu(), labels.cpu()
    classes = classes or tuple(str(c) for c in range(logits.shape[1]))
    if not torch.isfinite(logits).all():  # NaN weights would otherwise "predict" class 0 at 9.8%
        raise LenetError("the model's outputs hold NaN or infinite values (damaged weights?)")
    predictions = logits.argmax(1)
    confusion = confusion_matrix(labels, predictions, logits.shape[1])
    true_positives = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    in_top_k = (logits.topk(top_k, dim=1).indices == labels[:, None]).any(1)
    per_class = tuple(ClassMetrics(c, classes[c],
                                   (true_positives[c] / predicted[c]).item() if predicted[c] else 0.0,
                                   (true_positives[c] / actual[c]).item() if actual[c] else 0.0,
                                   int(actual[c])) for c in range(confusion.shape[0]))
    return Metrics(examples=len(labels), loss=F.cross_entropy(logits, labels).item(),
                   accuracy=(predictions == labels).double().mean().item(), top_k=top_k,
                   top_k_accuracy=in_top_k.double().mean().item(), classes=tuple(classes), per_class=per_class,
                   confusion=tuple(map(tuple, confusion.tolist())))


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, top_k: int | None = None,
             progress: Progress | None = None, tta: bool = False) -> Metrics:
    """Metrics of the network MODEL on uint8 IMAGES with LABELS (see metrics_from_logits; TTA as in batched_logits)."""
    return metrics_from_logits(batched_logits(model, images, progress=progress, tta=tta), labels, top_k)


def evaluate_model(model: LoadedModel | str | Path, data: Dataset, split: str = "test", top_k: int | None = None,
                   tensorboard: bool = True, progress: Progress | None = None, tta: bool = False) -> Evaluation:
    """Metrics of MODEL (from open_model, or a source to open on the CPU) on one split of DATA, which
    must be of the model's data set. A model directory's results are also written as TensorBoard
    events under MODEL_DIR/events/eval-SPLIT when TENSORBOARD."""
    model = model if isinstance(model, LoadedModel) else open_model(model)
    top_k = check_top_k(top_k, model.num_classes, default=5)
    model.check_data(data)
    check_held_out(model.source, model.info, split)
    images, labels = data.split(split)
    logits, scores = model.logits_and_scores(images, tta, progress)
    result = Evaluation(model.info.step, split, tta, model.precision,
                        _metrics(logits, labels, top_k, model.info.classes), calibration_of(model, scores, labels))
    if tensorboard and model.supports_tta:  # a model directory, which has an events directory
        write_eval_events(model.source, result)
    return result


def calibration_of(model: LoadedModel, scores: Scores, labels: torch.Tensor) -> Calibration:
    """MODEL's Calibration on a split, from its SCORES of the split's images and their LABELS."""
    labels = labels.cpu().numpy()
    probabilities = scores.probabilities
    return Calibration(temperature=model.temperature, nll=negative_log_likelihood(probabilities, labels),
                       ece=expected_calibration_error(probabilities, labels), min_confidence=model.min_confidence,
                       declined=float(declined(scores, model.min_confidence).mean()) if len(labels) else 0.0)


def _distinct(members: list[LoadedModel | str | Path]) -> list[LoadedModel | Path]:
    """MEMBERS (opened models or sources), refused when there are none or one is given twice."""
    if not members:
        raise LenetError("an ensemble needs at least one model directory or ONNX file")
    seen = set()
    for source in (m.source if isinstance(m, LoadedModel) else Path(m) for m in members):
        if source.resolve() in seen:  # it would count twice in the mean
            raise LenetError(f"{source}: given twice")
        seen.add(source.resolve())
    return [m if isinstance(m, LoadedModel) else Path(m) for m in members]


def evaluate_ensemble(members: list[LoadedModel | str | Path], data: Dataset, split: str = "test",
                      device: str | torch.device = "cpu", top_k: int | None = None, tta: bool = False,
                      progress: Progress | None = None, precision: str = "auto") -> EnsembleEvaluation:
    """Metrics of the mean of several models' probabilities on one split, with each member's own
    accuracy and error count, and how many images all members get wrong (averaging cannot fix those). A member is a model directory or an exported
    .onnx file (no TTA), opened on DEVICE in PRECISION, or a model open_model opened."""
    # Every member is opened and checked before the first is evaluated.
    models: list[LoadedModel] = [m if isinstance(m, LoadedModel) else open_model(m, device, precision=precision)
                                 for m in _distinct(members)]
    top_k = check_top_k(top_k, models[0].num_classes, default=5)
    for model in models:
        model.check_data(data)
        check_held_out(model.source, model.info, split)
        if tta:
            model.require_tta()
    images, labels = data.split(split)
    results, log_probabilities = [], []
    wrong_by_all = torch.ones(len(labels), dtype=torch.bool)
    for index, model in enumerate(models):
        source = model.source
        logits = model.logits(images, tta)
        wrong = torch.from_numpy(logits.argmax(1)) != labels.cpu()
        wrong_by_all &= wrong
        results.append(MemberResult(str(source), model.info.step, int(wrong.sum()), (~wrong).double().mean().item()))
        log_probabilities.append(torch.log_softmax(torch.from_numpy(logits), dim=1))
        if progress:
            progress(index + 1, len(models))
    # The log of the mean probability, without underflow (see batched_logits' TTA).
    mean_log_probability = torch.logsumexp(torch.stack(log_probabilities), 0) - math.log(len(models))
    return EnsembleEvaluation(split, tta, tuple(results), int(wrong_by_all.sum()),
                              _metrics(mean_log_probability, labels, top_k, models[0].info.classes))


def watch_checkpoints(model_dir: str | Path, poll_s: float = 5.0, split: str = "test") -> Iterator[int]:
    """Yield the step of each new checkpoint in MODEL_DIR as it appears, the newest first, forever.

    Like the tutorials' mnist_eval.py, which re-evaluated the latest checkpoint every few seconds
    while training ran in another process. A directory whose recipe trains on the validation images
    is refused for SPLIT validation at its first checkpoint, once.
    """
    model_dir = model_dir_for(model_dir, "--watch")
    if isinstance(poll_s, bool) or not isinstance(poll_s, (int, float)) or not 0 < poll_s < math.inf:
        raise LenetError(f"--poll-seconds must be a positive number, got {poll_s:g}")
    return _new_checkpoints(model_dir, poll_s, split)  # the checks above run now, not at the first next()


def _new_checkpoints(model_dir: Path, poll_s: float, split: str) -> Iterator[int]:
    seen = -1
    while True:
        steps = list_checkpoints(model_dir)
        if steps and steps[-1] > seen:
            if seen < 0 and split == "validation":
                recipe = stored_recipe(model_dir)
                if recipe is not None and recipe.train_on_validation:
                    raise LenetError(f"{model_dir}: trained on the validation images too (recipe field "
                                     f"train_on_validation); use --split test")
            seen = steps[-1]
            yield seen
        time.sleep(poll_s)
