"""Metrics on a labelled split, and watching a model directory for new checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .augment import TTA_SHIFTS, shifted
from .checkpoint import list_checkpoints, load_model
from .data import Mnist, to_float
from .errors import LenetError
from .export import OnnxPredictor, is_onnx_file, onnx_model_info
from .models import NUM_CLASSES
from .tensorboard import write_eval_events


# Images per inference batch. On the CPU, 100 keeps the largest activation of the widest network
# (bn-cnn-wide: 64 x 28 x 28 floats, 200 KB per image) under glibc's 32 MB mmap threshold, so
# batches reuse heap memory; at 1,000 every batch maps fresh pages from the kernel, and the page
# faults took most of the time (`benchmarks/throughput.py --infer-batch 100` vs 1000).
CPU_INFERENCE_BATCH = 100
GPU_INFERENCE_BATCH = 1000


def logits_in_batches(images: torch.Tensor, batch_size: int, logits_of: Callable[[torch.Tensor], torch.Tensor],
                      progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """LOGITS_OF applied to IMAGES BATCH_SIZE at a time and concatenated; PROGRESS(done, total) after each."""
    chunks = []
    for start in range(0, len(images), batch_size):
        chunks.append(logits_of(images[start:start + batch_size]))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return torch.cat(chunks) if chunks else torch.empty(0, NUM_CLASSES)


@torch.no_grad()
def batched_logits(model: nn.Module, images: torch.Tensor, batch_size: int | None = None,
                   progress: Callable[[int, int], None] | None = None, tta: bool = False) -> torch.Tensor:
    """Logits for uint8 (N, 28, 28) or float (N, 1, 28, 28) images, in eval mode, batch by batch
    (by default CPU_INFERENCE_BATCH or GPU_INFERENCE_BATCH images); PROGRESS(done, total) is called
    after each batch. With TTA (test-time augmentation) each image is also seen shifted by one
    pixel four ways, and the result is the log of the mean probability."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or (CPU_INFERENCE_BATCH if device.type == "cpu" else GPU_INFERENCE_BATCH)

    def logits_of(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        batch = to_float(batch) if batch.dtype == torch.uint8 else batch
        if not tta:
            return model(batch)
        views = torch.stack([torch.softmax(model(shifted(batch, dy, dx)).float(), dim=1) for dy, dx in TTA_SHIFTS])
        return views.mean(0).log()

    logits = logits_in_batches(images, batch_size, logits_of, progress)
    model.train(was_training)
    return logits.to(device)  # a no-op but for no images, whose empty result is made on the CPU


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Counts with true classes as rows and predicted classes as columns."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, top_k: int = 5) -> dict:
    """Loss, accuracy, top-k accuracy, per-class precision/recall and the confusion matrix."""
    logits, labels = logits.float().cpu(), labels.cpu()
    predictions = logits.argmax(1)
    confusion = confusion_matrix(labels, predictions, logits.shape[1])
    true_positives = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    k = min(top_k, logits.shape[1])
    in_top_k = (logits.topk(k, dim=1).indices == labels[:, None]).any(1)
    per_class = [{"class": c,
                  "precision": (true_positives[c] / predicted[c]).item() if predicted[c] else 0.0,
                  "recall": (true_positives[c] / actual[c]).item() if actual[c] else 0.0,
                  "support": int(actual[c])} for c in range(confusion.shape[0])]
    return {
        "examples": len(labels),
        "loss": F.cross_entropy(logits, labels).item(),
        "accuracy": (predictions == labels).double().mean().item(),
        f"top_{k}_accuracy": in_top_k.double().mean().item(),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, top_k: int = 5,
             progress: Callable[[int, int], None] | None = None, tta: bool = False) -> dict:
    """Metrics of MODEL on uint8 IMAGES with LABELS (see metrics_from_logits; TTA as in batched_logits)."""
    return metrics_from_logits(batched_logits(model, images, progress=progress, tta=tta), labels, top_k)


def check_held_out(model_dir: str | Path, recipe: dict, split: str) -> None:
    """Refuse to measure a model on validation images it was trained on (RECIPE as stored in MODEL_DIR)."""
    if split == "validation" and recipe.get("train_on_validation", False):
        raise LenetError(f"{model_dir}: trained on the validation images too (recipe field train_on_validation); "
                         f"use --split test")


def evaluate_checkpoint(model_dir: str | Path, data: Mnist, split: str = "test", step: int | None = None,
                        device: str | torch.device = "cpu", top_k: int = 5, tensorboard: bool = True,
                        progress: Callable[[int, int], None] | None = None, tta: bool = False) -> dict:
    """Metrics of a model directory's checkpoint (the newest by default) on one split of DATA,
    also written as TensorBoard events under MODEL_DIR/events/eval-SPLIT when TENSORBOARD."""
    model, metadata = load_model(model_dir, device, step)
    check_held_out(model_dir, metadata["recipe"], split)
    images, labels = data.split(split)
    result = {"step": metadata["step"], "split": split, "tta": tta,
              **evaluate(model, images, labels, top_k, progress, tta)}
    if tensorboard:
        write_eval_events(model_dir, result)
    return result


def onnx_logits(path: str | Path, images: torch.Tensor, batch_size: int = 1000,
                progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, int | None]:
    """Logits of an exported .onnx file for uint8 (N, 28, 28) IMAGES, run by onnxruntime on the
    CPU as `lenet predict` and `lenet serve` run it, and the training step stored in the file."""
    predictor = OnnxPredictor(path)
    logits = logits_in_batches(images, batch_size, lambda batch: predictor.logits(to_float(batch).numpy()), progress)
    return logits, onnx_model_info(predictor.metadata)["step"]


def evaluate_onnx(path: str | Path, data: Mnist, split: str = "test", top_k: int = 5,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Metrics of an exported .onnx file on one split of DATA: what the export kept of the network."""
    images, labels = data.split(split)
    logits, step = onnx_logits(path, images, progress=progress)
    return {"step": step, "split": split, "tta": False, **metrics_from_logits(logits, labels, top_k)}


def evaluate_ensemble(members: list[str | Path], data: Mnist, split: str = "test",
                      device: str | torch.device = "cpu", top_k: int = 5, tta: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Metrics of the mean of several models' probabilities on one split, with each member's own
    accuracy and error count under "members", and "errors_of_every_member": how many images all
    members get wrong (averaging cannot fix those). A member is a model directory or an exported
    .onnx file (no TTA)."""
    if not members:
        raise ValueError("an ensemble needs at least one model directory")
    onnx_members = [str(source) for source in members if is_onnx_file(source)]
    if tta and onnx_members:
        raise LenetError(f"{onnx_members[0]}: --tta needs model directories, not ONNX files")
    images, labels = data.split(split)
    results, probability_sum = [], None
    wrong_by_all = torch.ones(len(labels), dtype=torch.bool)
    for index, source in enumerate(members):
        if is_onnx_file(source):
            logits, step = onnx_logits(source, images)
        else:
            model, metadata = load_model(source, device)
            check_held_out(source, metadata["recipe"], split)
            logits, step = batched_logits(model, images, tta=tta).float().cpu(), metadata["step"]
        wrong = logits.argmax(1) != labels.cpu()
        wrong_by_all &= wrong
        results.append({"model_dir": str(source), "step": step, "errors": int(wrong.sum()),
                        "accuracy": (~wrong).double().mean().item()})
        probabilities = torch.softmax(logits, dim=1)
        probability_sum = probabilities if probability_sum is None else probability_sum + probabilities
        if progress:
            progress(index + 1, len(members))
    mean_log_probability = (probability_sum / len(members)).log()
    return {"split": split, "tta": tta, "members": results, "errors_of_every_member": int(wrong_by_all.sum()),
            **metrics_from_logits(mean_log_probability, labels, top_k)}


def watch_checkpoints(model_dir: str | Path, poll_s: float = 5.0) -> Iterator[int]:
    """Yield the step of each new checkpoint in MODEL_DIR as it appears, the newest first, forever.

    Like the tutorials' mnist_eval.py, which re-evaluated the latest checkpoint every few seconds
    while training ran in another process.
    """
    seen = -1
    while True:
        steps = list_checkpoints(model_dir)
        if steps and steps[-1] > seen:
            seen = steps[-1]
            yield seen
        time.sleep(poll_s)
