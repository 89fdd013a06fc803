"""Open a trained model (a model directory or an exported .onnx file) and run it on batches of images.

`open_model` is the one place that tells the two kinds of source apart; eval, ensemble, predict,
serve, plot and export all go through it. torch is imported only for model directories: an
exported file runs on numpy and onnxruntime alone, so `lenet predict --model x.onnx` starts fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .datasets import check_same_dataset
from .decline import FALLBACK_MIN_CONFIDENCE
from .errors import LenetError
from .files import check_finite_weights, read_file_bytes
from .idx import IMAGE_SIZE
from .model_info import ModelInfo, input_format
from .onnx_format import (DIGIT_OUTPUT, calibration_from_properties, expected_outputs, info_from_properties,
                          onnx_float_tensors)

if TYPE_CHECKING:
    import torch
    from torch import nn

Progress = Callable[[int, int], None]  # (done, total)

# Images per inference batch. On the CPU, 100 keeps the largest activation of the widest network
# (bn-cnn-wide: 64 x 28 x 28 floats, 200 KB per image) under glibc's 32 MB mmap threshold, so
# batches reuse heap memory; at 1,000 every batch maps fresh pages from the kernel, and the page
# faults took most of the time (`benchmarks/speed/throughput.py --infer-batch 100` vs 1000).
CPU_INFERENCE_BATCH = 100
GPU_INFERENCE_BATCH = 1000
ONNX_INFERENCE_BATCH = 1000  # onnxruntime keeps its own memory pool


def is_onnx_file(source: str | Path) -> bool:
    """Whether SOURCE names an exported ONNX file rather than a model directory: the .onnx suffix."""
    return Path(source).suffix.lower() == ".onnx"


def check_top_k(k: int | None, num_classes: int | None = None, default: int = 3) -> int:
    """K, refused unless 1 <= K <= NUM_CLASSES (when known); None is DEFAULT, or NUM_CLASSES when fewer."""
    if k is None:
        return default if num_classes is None else min(default, num_classes)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= (num_classes or k):
        raise LenetError(f"--top-k must be from 1 to {num_classes or 'the number of classes'}, got {k}")
    return k


def check_held_out(source: str | Path, info: ModelInfo, split: str) -> None:
    """Refuse to measure a model on validation images it was trained on."""
    if split == "validation" and info.trained_on_validation:
        raise LenetError(f"{source}: trained on the validation images too (recipe field train_on_validation); "
                         f"use --split test")


def batch_slices(total: int, batch_size: int, progress: Progress | None = None) -> Iterator[slice]:
    """Slices of range(TOTAL), BATCH_SIZE long; PROGRESS(done, total) after each has been used."""
    for start in range(0, total, batch_size):
        yield slice(start, start + batch_size)
        if progress:
            progress(min(start + batch_size, total), total)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def as_float_inputs(images) -> np.ndarray:
    """uint8 (N, 28, 28) 0..255 or float (N, 28, 28) / (N, 1, 28, 28) 0..1, numpy or torch -> float32 (N, 1, 28, 28)."""
    array = np.asarray(images)
    array = array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32, copy=False)
    return array.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


@dataclass(frozen=True)
class Scores:
    """What a model says of N inputs: calibrated class PROBABILITIES (N, classes) and, for a model with
    the digit gate, DIGIT_PROBABILITIES (N,) that each is a digit at all (see lenet.decline)."""
    probabilities: np.ndarray
    digit_probabilities: np.ndarray | None = None

    def __getitem__(self, rows) -> Scores:
        return Scores(self.probabilities[rows],
                      None if self.digit_probabilities is None else self.digit_probabilities[rows])


def concatenate_scores(parts: list[Scores]) -> Scores:
    """The Scores of PARTS' inputs one after the other."""
    digit = [p.digit_probabilities for p in parts]
    return Scores(np.concatenate([p.probabilities for p in parts]),
                  None if any(d is None for d in digit) else np.concatenate(digit))


class LoadedModel:
    """A model ready to predict. Subclasses: CheckpointModel (PyTorch) and OnnxModel (onnxruntime)."""
    source: Path
    info: ModelInfo
    temperature: float = 1.0  # its calibration: probabilities are softmax(logits / temperature)
    min_confidence: float = FALLBACK_MIN_CONFIDENCE  # its default threshold (see lenet.decline)
    has_gate: bool = False    # whether it says how likely an input is a digit (models of digits)
    precision: str = "fp32"  # what its arithmetic is, and why, in words: "bf16 (auto: AVX512-BF16)"
    supports_tta: bool = False
    # What the caller should be told about how the model was opened, one line each (the CLI prints
    # them as warnings): a model directory's damaged checkpoints passed over for an older one.
    warnings: tuple[str, ...] = ()

    def logits(self, images, tta: bool = False, progress: Progress | None = None) -> np.ndarray:
        """float32 logits (N, classes) of IMAGES (see as_float_inputs), batch by batch. With TTA (test-time
        augmentation) each image is also seen shifted by one pixel four ways, and the result is the
        log of the mean probability. Outputs that are not finite (damaged weights) are refused here,
        once for every caller: eval, ensemble, predict, serve and the Python API."""
        return self._run(images, tta, progress, gate=False)[0]

    def scores(self, images, tta: bool = False, progress: Progress | None = None) -> Scores:
        """The calibrated Scores of IMAGES (TTA as in logits; the gate sees each image once, unshifted)."""
        return self.logits_and_scores(images, tta, progress)[1]

    def logits_and_scores(self, images, tta: bool = False, progress: Progress | None = None) -> tuple[np.ndarray, Scores]:
        """The logits of IMAGES and their calibrated Scores, from one pass."""
        logits, digit_probabilities = self._run(images, tta, progress, gate=self.has_gate)
        return logits, Scores(softmax(logits / self.temperature), digit_probabilities)

    def probabilities(self, images, tta: bool = False) -> np.ndarray:
        """Calibrated probabilities (N, classes) of IMAGES: softmax(logits / temperature)."""
        return softmax(self.logits(images, tta) / self.temperature)

    def _run(self, images, tta: bool, progress: Progress | None, gate: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The logits of IMAGES and, when GATE, their digit probabilities; outputs that are not finite refused."""
        if tta:
            self.require_tta()
        logits, digit_probabilities = self._forward(images, tta, progress, gate)
        if not np.isfinite(logits).all() or digit_probabilities is not None and not np.isfinite(digit_probabilities).all():
            raise LenetError(f"{self.source}: the model's outputs hold NaN or infinite values (damaged weights?)")
        return logits, digit_probabilities

    def _forward(self, images, tta: bool, progress: Progress | None, gate: bool) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def require_tta(self) -> None:
        """Refuse test-time augmentation where the model cannot do it (an exported file)."""
        if not self.supports_tta:
            raise LenetError(f"{self.source}: --tta needs a model directory, not an ONNX file")

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    def check_data(self, data) -> None:
        """Refuse DATA (a data.Dataset) of another data set than this model's."""
        check_same_dataset(self.source, self.info.dataset, self.num_classes, data.name, len(data.classes))

    @property
    def label(self) -> str:
        """How results name this model: "step N" for a checkpoint, the file name for an export."""
        raise NotImplementedError

    def network(self, purpose: str) -> "nn.Module":
        """The PyTorch network, for what only a model directory has (PURPOSE names it in the error)."""
        raise LenetError(f"{self.source}: {purpose} needs a model directory, not an ONNX file")


class CheckpointModel(LoadedModel):
    """A model directory's checkpoint (the newest intact one by default: see checkpoint.load_intact_model),
    its network on DEVICE in eval mode.

    PRECISION "auto" (the default) infers in bf16 where DEVICE has bf16 arithmetic (AMX, AVX512-BF16,
    a recent GPU) and in fp32 elsewhere: on such a CPU bf16 gives 2-3x the images per second and the
    same classes as fp32 on 99.97% of the MNIST test set (docs/speed.md, "Precision")."""
    supports_tta = True

    def __init__(self, source: Path, device, step: int | None = None, precision: str = "auto"):
        from .checkpoint import load_intact_model
        from .execution import Execution, resolve_device, resolve_precision
        self.source = source
        device = resolve_device(device)
        execution, self.precision = resolve_precision(Execution(precision), device)
        self.bf16 = execution.bf16
        # A training run may be writing into SOURCE: pruning the checkpoint listed, or having left a damaged one.
        self._network, self.checkpoint, skipped = load_intact_model(source, device, step)
        self.temperature = self.checkpoint.temperature
        self.min_confidence = self.checkpoint.min_confidence
        self._gate = gate_for(self.checkpoint.recipe.dataset, device)
        self.has_gate = self._gate is not None
        self.warnings = tuple(f"{source}: checkpoint {s.step} is damaged ({s.reason}); using {self.checkpoint.step}"
                              for s in skipped)
        recipe = self.checkpoint.recipe
        self.info = ModelInfo(model=recipe.model, recipe=recipe.name, step=self.checkpoint.step,
                              test_accuracy=self.checkpoint.test_accuracy,
                              weights_sha256=self.checkpoint.weights_sha256,
                              evaluation_weights=self.checkpoint.evaluation_weights,
                              trained_on_validation=recipe.train_on_validation, dataset=recipe.dataset,
                              classes=self.checkpoint.classes, dataset_sha256=self.checkpoint.dataset_sha256,
                              input_format=input_format(recipe.dataset, self.checkpoint.classes))

    def _forward(self, images, tta: bool, progress: Progress | None, gate: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import torch
        images = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
        logits = batched_logits(self._network, images, progress=progress, tta=tta, bf16=self.bf16).float().cpu().numpy()
        # The gate is small: fp32 always, so that a directory and its ONNX export decline alike.
        return logits, (batched_logits(self._gate, images).float().cpu().numpy().reshape(-1) if gate else None)

    @property
    def label(self) -> str:
        return f"step {self.info.step}"

    def network(self, purpose: str) -> "nn.Module":
        return self._network


class OnnxModel(LoadedModel):
    """An exported ONNX file run by onnxruntime on the CPU."""

    precision = "fp32 (onnxruntime)"

    def __init__(self, source: Path, device="cpu", precision: str = "auto"):
        if str(device) != "cpu":
            raise LenetError(f"{source}: ONNX files run on the CPU (onnxruntime); drop --device {device}")
        if precision not in ("auto", "fp32"):
            raise LenetError(f"{source}: an ONNX file runs in fp32 (onnxruntime); drop --precision {precision}")
        if not source.exists():
            raise LenetError(f"{source}: no such ONNX file")
        payload = read_file_bytes(source)
        import onnxruntime
        self.source = source
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise LenetError(f"{source}: not a loadable ONNX model ({str(error).splitlines()[0]})") from None
        # onnxruntime has parsed PAYLOAD, so it is well-formed protobuf.
        check_finite_weights(onnx_float_tensors(payload), str(source))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, IMAGE_SIZE, IMAGE_SIZE]:
            raise LenetError(f"{source}: expected one input of shape (N, 1, 28, 28), "
                             f"got {[(i.name, i.shape) for i in inputs]}")
        outputs = self.session.get_outputs()
        # An export of a model of digits also returns the digit gate's probabilities (see export.py).
        self.has_gate = len(outputs) == 2 and outputs[1].name == DIGIT_OUTPUT and len(outputs[1].shape) == 1
        outputs = outputs[:1] if self.has_gate else outputs
        if len(outputs) != 1 or len(outputs[0].shape) != 2 or not isinstance(outputs[0].shape[1], int) \
                or outputs[0].shape[1] < 2:
            raise LenetError(f"{source}: expected one output of shape (N, classes), "
                             f"got {[(o.name, o.shape) for o in outputs]}")
        self.input_name = inputs[0].name
        self.properties = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = info_from_properties(self.properties, outputs[0].shape[1])
        self.temperature, self.min_confidence = calibration_from_properties(self.properties, FALLBACK_MIN_CONFIDENCE)
        expected = expected_outputs(self.properties, self.info.dataset, outputs[0].shape[1])
        if outputs[0].shape[1] != expected:
            raise LenetError(f"{source}: expected one output of shape (N, {expected}) for {self.info.dataset}, "
                             f"got {[(o.name, o.shape) for o in outputs]}")

    @property
    def label(self) -> str:
        return self.source.name

    def _forward(self, images, tta: bool, progress: Progress | None, gate: bool) -> tuple[np.ndarray, np.ndarray | None]:
        inputs = as_float_inputs(images)
        chunks = [self.session.run(None, {self.input_name: inputs[batch]})
                  for batch in batch_slices(len(inputs), ONNX_INFERENCE_BATCH, progress)]
        if not chunks:
            return np.empty((0, self.num_classes), np.float32), (np.empty(0, np.float32) if gate else None)
        logits = np.concatenate([c[0] for c in chunks]).astype(np.float32)
        return logits, (np.concatenate([c[1] for c in chunks]).astype(np.float32) if gate else None)


def open_model(source: str | Path, device="cpu", step: int | None = None, precision: str = "auto") -> LoadedModel:
    """A model directory's checkpoint STEP (the newest intact one by default, any passed over named in
    the model's warnings) or an exported .onnx file, ready to predict in PRECISION (fp32, bf16, or auto:
    bf16 where the device has bf16 arithmetic; see CheckpointModel; an ONNX file runs in fp32)."""
    from .execution import Execution
    Execution(precision)  # refuses an unknown precision
    source = Path(source)
    if is_onnx_file(source):
        if step is not None:
            raise LenetError(f"{source}: an ONNX file holds one step; a given step needs a model directory")
        return OnnxModel(source, device, precision)
    return CheckpointModel(source, device, step, precision)


def model_dir_for(source: str | Path, purpose: str) -> Path:
    """SOURCE as a model directory, for PURPOSE (say, --watch), which an exported file cannot serve."""
    from .checkpoint import require_model_dir
    if is_onnx_file(source):
        raise LenetError(f"{source}: {purpose} needs a model directory, not an ONNX file")
    return require_model_dir(source)


def gate_for(dataset: str, device) -> "nn.Module | None":
    """The digit gate (lenet.gate) for a model of DATASET on DEVICE: None unless it reads digits."""
    from .datasets import reads_digits
    from .gate import load_gate
    return load_gate(device) if reads_digits(dataset) else None


def batched_logits(model: "nn.Module", images: "torch.Tensor", batch_size: int | None = None,
                   progress: Progress | None = None, tta: bool = False, bf16: bool = False) -> "torch.Tensor":
    """Logits on the model's device for uint8 (N, 28, 28) or float (N, 1, 28, 28) images, in eval
    mode, batch by batch (by default CPU_INFERENCE_BATCH or GPU_INFERENCE_BATCH images). TTA as in
    LoadedModel.logits. BF16 autocasts the convolutions and matrix products to bfloat16 (the logits
    may then be bfloat16)."""
    import torch

    from .augment import TTA_SHIFTS, shifted
    from .data import to_float
    from .models import eval_mode, model_device
    device = model_device(model)
    batch_size = batch_size or (CPU_INFERENCE_BATCH if device.type == "cpu" else GPU_INFERENCE_BATCH)
    chunks = []
    # One autocast for all batches: it casts each weight to bf16 once and reuses it.
    with torch.no_grad(), eval_mode(model), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for batch in batch_slices(len(images), batch_size, progress):
            inputs = images[batch].to(device)
            inputs = to_float(inputs) if inputs.dtype == torch.uint8 else inputs.float().reshape(-1, 1, 28, 28)
            if tta:
                # log of the mean probability, as a log-sum-exp of log-probabilities: the mean of
                # probabilities underflows to 0 (and its log to -inf) for very confident views.
                views = torch.stack([torch.log_softmax(model(shifted(inputs, dy, dx)).float(), dim=1)
                                     for dy, dx in TTA_SHIFTS])
                chunks.append(torch.logsumexp(views, 0) - math.log(len(TTA_SHIFTS)))
            else:
                chunks.append(model(inputs))
    return torch.cat(chunks) if chunks else torch.empty(0, _outputs(model), device=device)


def _outputs(model: "nn.Module") -> int:
    """How many classes MODEL tells apart: the width of its last linear layer."""
    from torch import nn
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
