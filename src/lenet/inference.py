"""Open a trained model (a model directory or an exported .onnx file) and run it on batches of images.

`open_model` is the one place that tells the two kinds of source apart; eval, ensemble, predict,
serve, plot and export all go through it. torch is imported only for model directories: an
exported file runs on numpy and onnxruntime alone, so `lenet predict --model x.onnx` starts fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .datasets import DATASET_NAMES, KNOWN_DATASETS, check_same_dataset, default_classes
from .errors import LenetError
from .files import check_finite_weights, read_file_bytes
from .idx import IMAGE_SIZE, NUM_CLASSES

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .checkpoint import Checkpoint

Progress = Callable[[int, int], None]  # (done, total)

# Images per inference batch. On the CPU, 100 keeps the largest activation of the widest network
# (bn-cnn-wide: 64 x 28 x 28 floats, 200 KB per image) under glibc's 32 MB mmap threshold, so
# batches reuse heap memory; at 1,000 every batch maps fresh pages from the kernel, and the page
# faults took most of the time (`benchmarks/speed/throughput.py --infer-batch 100` vs 1000).
CPU_INFERENCE_BATCH = 100
GPU_INFERENCE_BATCH = 1000
ONNX_INFERENCE_BATCH = 1000  # onnxruntime keeps its own memory pool

INPUT_FORMAT = ("images: float32 (N, 1, 28, 28), white ink on black, pixel / 255 in [0, 1], the digit "
                "normalized as MNIST (longer side 20 px, centred by centre of mass in 28x28; "
                "`lenet predict` and lenet.preprocess do this); output logits: float32 (N, 10), "
                "softmax gives the probabilities of classes 0-9")


def input_format(dataset: str, classes: tuple[str, ...]) -> str:
    """What an exported network of DATASET takes and returns, in words (INPUT_FORMAT for MNIST)."""
    if dataset == "mnist":
        return INPUT_FORMAT
    picture = ("the item normalized as Fashion-MNIST (background trimmed, longer side 28 px, centred, light on "
               "dark)" if dataset == "fashion-mnist" else "as the data set's IDX images")
    return (f"images: float32 (N, 1, 28, 28), pixel / 255 in [0, 1], {picture}; `lenet predict` and "
            f"lenet.preprocess do this; output logits: float32 (N, {len(classes)}), softmax gives the "
            f"probabilities of the classes in lenet.classes")


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


@dataclass(frozen=True)
class ModelInfo:
    """What a model says about itself: from a checkpoint's sidecar or an ONNX file's lenet.* properties.
    Any field may be None for an ONNX file made elsewhere."""
    model: str | None                # the registered network, e.g. "tutorial-cnn"
    recipe: str | None               # the recipe's name
    step: int | None
    test_accuracy: float | None
    weights_sha256: str | None
    evaluation_weights: str | None   # "moving_average" or "trained"
    trained_on_validation: bool      # the recipe's train_on_validation: its validation split is not held out
    dataset: str                     # what it was trained on: one of datasets.DATASET_NAMES
    classes: tuple[str, ...]         # the names of its outputs, in order
    dataset_sha256: dict[str, str]   # of the files it was trained on (empty when unknown)
    input_format: str = INPUT_FORMAT

    def to_dict(self) -> dict:
        """The fields GET /model reports."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k not in ("trained_on_validation", "input_format")}


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


class LoadedModel:
    """A model ready to predict. Subclasses: CheckpointModel (PyTorch) and OnnxModel (onnxruntime)."""
    source: Path
    info: ModelInfo
    precision: str = "fp32"  # what its arithmetic is, and why, in words: "bf16 (auto: AVX512-BF16)"
    supports_tta: bool = False
    devices: tuple[str, ...] = ("cpu",)

    def logits(self, images, tta: bool = False, progress: Progress | None = None) -> np.ndarray:
        """float32 logits (N, classes) of IMAGES (see as_float_inputs), batch by batch. With TTA (test-time
        augmentation) each image is also seen shifted by one pixel four ways, and the result is the
        log of the mean probability. Outputs that are not finite (damaged weights) are refused here,
        once for every caller: eval, ensemble, predict, serve and the Python API."""
        if tta:
            self.require_tta()
        logits = self._logits(images, tta, progress)
        if not np.isfinite(logits).all():
            raise LenetError(f"{self.source}: the model's outputs hold NaN or infinite values (damaged weights?)")
        return logits

    def _logits(self, images, tta: bool, progress: Progress | None) -> np.ndarray:
        raise NotImplementedError

    def require_tta(self) -> None:
        """Refuse test-time augmentation where the model cannot do it (an exported file)."""
        if not self.supports_tta:
            raise LenetError(f"{self.source}: --tta needs a model directory, not an ONNX file")

    def probabilities(self, images) -> np.ndarray:
        """Softmax probabilities (N, classes) of IMAGES."""
        return softmax(self.logits(images))

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
    """A model directory's checkpoint (the newest by default), its network on DEVICE in eval mode.

    PRECISION "auto" (the default) infers in bf16 where DEVICE has bf16 arithmetic (AMX, AVX512-BF16,
    a recent GPU) and in fp32 elsewhere: on such a CPU bf16 gives 2-3x the images per second and the
    same classes as fp32 on 99.97% of the MNIST test set (docs/speed.md, "Precision")."""
    supports_tta = True
    devices = ("cpu", "cuda")

    def __init__(self, source: Path, device, step: int | None = None, precision: str = "auto"):
        from .checkpoint import load_model
        from .execution import Execution, resolve_device, resolve_precision
        self.source = source
        device = resolve_device(device)
        execution, self.precision = resolve_precision(Execution(precision), device)
        self.bf16 = execution.bf16
        self._network, self.checkpoint = load_model(source, device, step)
        recipe = self.checkpoint.recipe
        self.info = ModelInfo(model=recipe.model, recipe=recipe.name, step=self.checkpoint.step,
                              test_accuracy=self.checkpoint.test_accuracy,
                              weights_sha256=self.checkpoint.weights_sha256,
                              evaluation_weights=self.checkpoint.evaluation_weights,
                              trained_on_validation=recipe.train_on_validation, dataset=recipe.dataset,
                              classes=self.checkpoint.classes, dataset_sha256=self.checkpoint.dataset_sha256,
                              input_format=input_format(recipe.dataset, self.checkpoint.classes))

    def _logits(self, images, tta: bool, progress: Progress | None) -> np.ndarray:
        import torch
        images = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
        return batched_logits(self._network, images, progress=progress, tta=tta, bf16=self.bf16).float().cpu().numpy()

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
        check_finite_weights(_onnx_float_tensors(payload), str(source))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, IMAGE_SIZE, IMAGE_SIZE]:
            raise LenetError(f"{source}: expected one input of shape (N, 1, 28, 28), "
                             f"got {[(i.name, i.shape) for i in inputs]}")
        outputs = self.session.get_outputs()
        if len(outputs) != 1 or len(outputs[0].shape) != 2 or not isinstance(outputs[0].shape[1], int) \
                or outputs[0].shape[1] < 2:
            raise LenetError(f"{source}: expected one output of shape (N, classes), "
                             f"got {[(o.name, o.shape) for o in outputs]}")
        self.input_name = inputs[0].name
        self.properties = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = info_from_properties(self.properties, outputs[0].shape[1])
        # A known set has its number of classes; a user's set has as many as its file names.
        named = _parsed(self.properties.get("lenet.classes"), json.loads)
        known = KNOWN_DATASETS.get(self.info.dataset)
        expected = len(known.classes) if known else len(named) if isinstance(named, list) else outputs[0].shape[1]
        if outputs[0].shape[1] != expected:
            raise LenetError(f"{source}: expected one output of shape (N, {expected}) for {self.info.dataset}, "
                             f"got {[(o.name, o.shape) for o in outputs]}")

    @property
    def label(self) -> str:
        return self.source.name

    def _logits(self, images, tta: bool, progress: Progress | None) -> np.ndarray:
        inputs = as_float_inputs(images)
        chunks = [self.session.run(None, {self.input_name: inputs[batch]})[0]
                  for batch in batch_slices(len(inputs), ONNX_INFERENCE_BATCH, progress)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.empty((0, self.num_classes), np.float32)


# ONNX's protobuf numbering (onnx.proto): ModelProto.graph 7; GraphProto.node 1, .initializer 5;
# NodeProto.attribute 5; AttributeProto.t 5; TensorProto.data_type 2, .float_data 4, .raw_data 9,
# .double_data 10, .name 8. Floating data types: FLOAT 1, FLOAT16 10, DOUBLE 11, BFLOAT16 16.
_ONNX_RAW_DTYPES = {1: np.dtype("<f4"), 10: np.dtype("<f2"), 11: np.dtype("<f8"), 16: np.dtype("<u2")}


def _protobuf_fields(buffer: memoryview) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of each field in one protobuf message, in order: a value is an
    int for varints, a memoryview for the others."""
    position = 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        wire = key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire == 2:
            size, position = _varint(buffer, position)
            value, position = buffer[position:position + size], position + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, position = buffer[position:position + size], position + size
        else:
            raise LenetError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, wire, value


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return value, position


def _onnx_float_tensors(payload: bytes) -> Iterator[tuple[str, np.ndarray]]:
    """(name, values) of the floating-point weights in an ONNX file: its graph's initializers and its
    Constant nodes' tensors. Read from the protobuf directly: importing the onnx package would add
    about a second to every `lenet predict --model x.onnx`."""
    graphs = [v for f, w, v in _protobuf_fields(memoryview(payload)) if f == 7 and w == 2]
    for graph in graphs:
        for field, wire, value in _protobuf_fields(graph):
            if field == 5 and wire == 2:
                yield _onnx_tensor(value)
            elif field == 1 and wire == 2:
                for attribute in (v for f, w, v in _protobuf_fields(value) if f == 5 and w == 2):
                    for tensor in (v for f, w, v in _protobuf_fields(attribute) if f == 5 and w == 2):
                        yield _onnx_tensor(tensor)


def _onnx_tensor(message: memoryview) -> tuple[str, np.ndarray]:
    name, data_type, chunks = "", 0, []
    for field, wire, value in _protobuf_fields(message):
        if field == 8 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif field == 2 and wire == 0:
            data_type = value
        elif field in (4, 9, 10) and wire == 2:  # packed float_data, raw_data, packed double_data
            chunks.append((field, value))
        elif field == 4 and wire == 5:
            chunks.append((4, value))
        elif field == 10 and wire == 1:
            chunks.append((10, value))
    values = []
    for field, chunk in chunks:
        dtype = np.dtype("<f4") if field == 4 else np.dtype("<f8") if field == 10 else _ONNX_RAW_DTYPES.get(data_type)
        if dtype is None or len(chunk) % dtype.itemsize:
            continue  # integer tensors (shapes, indices) are no weights
        array = np.frombuffer(chunk, dtype)
        # bfloat16 is the top half of a float32.
        values.append((array.astype(np.uint32) << 16).view(np.float32) if data_type == 16 and field == 9 else array)
    return name, np.concatenate(values) if values else np.zeros(0, np.float32)


def open_model(source: str | Path, device="cpu", step: int | None = None, precision: str = "auto") -> LoadedModel:
    """A model directory's checkpoint STEP (the newest by default) or an exported .onnx file, ready to
    predict in PRECISION (fp32, bf16, or auto: bf16 where the device has bf16 arithmetic; see
    CheckpointModel; an ONNX file runs in fp32)."""
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


def batched_logits(model: "nn.Module", images: "torch.Tensor", batch_size: int | None = None,
                   progress: Progress | None = None, tta: bool = False, bf16: bool = False) -> "torch.Tensor":
    """Logits on the model's device for uint8 (N, 28, 28) or float (N, 1, 28, 28) images, in eval
    mode, batch by batch (by default CPU_INFERENCE_BATCH or GPU_INFERENCE_BATCH images). TTA as in
    LoadedModel.logits. BF16 autocasts the convolutions and matrix products to bfloat16 (the logits
    may then be bfloat16)."""
    import torch

    from .augment import TTA_SHIFTS, shifted
    from .data import to_float
    from .models import eval_mode
    device = next(model.parameters()).device
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


# The lenet.* properties of an exported file: written by export_properties, read by info_from_properties.
def export_properties(checkpoint: "Checkpoint") -> dict[str, str]:
    """String key/values describing an exported network (stored in the exported file)."""
    return {
        "lenet.model": checkpoint.recipe.model,
        "lenet.recipe": json.dumps(checkpoint.recipe.to_dict(), sort_keys=True),
        "lenet.step": str(checkpoint.step),
        "lenet.test_accuracy": "" if checkpoint.test_accuracy is None else str(checkpoint.test_accuracy),
        "lenet.weights_sha256": checkpoint.weights_sha256,
        "lenet.evaluation_weights": checkpoint.evaluation_weights,
        "lenet.dataset": checkpoint.recipe.dataset,
        "lenet.classes": json.dumps(list(checkpoint.classes)),
        "lenet.dataset_sha256": json.dumps(checkpoint.dataset_sha256, sort_keys=True),
        "lenet.input_format": input_format(checkpoint.recipe.dataset, checkpoint.classes),
    }


def _parsed(text: str | None, parse: Callable[[str], object]) -> object:
    try:
        return parse(text) if text else None
    except (ValueError, RecursionError):
        return None


def _finite(value: object) -> float | None:
    return value if isinstance(value, float) and math.isfinite(value) else None


def info_from_properties(properties: dict[str, str], num_classes: int = NUM_CLASSES) -> ModelInfo:
    """What an ONNX file of NUM_CLASSES outputs says in its lenet.* properties, each value None when
    missing or unreadable: the file may come from elsewhere, and that is no reason to refuse a model
    that predicts. Without them it is a model of MNIST (what lenet exported before it knew other sets)
    or, naming an unknown data set, of an IDX set of its own; its classes are then named by default."""
    recipe = _parsed(properties.get("lenet.recipe"), json.loads)
    recipe = recipe if isinstance(recipe, dict) else {}
    dataset = properties.get("lenet.dataset") or recipe.get("dataset") or "mnist"
    dataset = dataset if dataset in DATASET_NAMES else "idx"
    classes = _parsed(properties.get("lenet.classes"), json.loads)
    if not (isinstance(classes, list) and len(classes) == num_classes and all(isinstance(c, str) for c in classes)):
        classes = default_classes(dataset, num_classes)
    dataset_sha256 = _parsed(properties.get("lenet.dataset_sha256"), json.loads)
    step = _parsed(properties.get("lenet.step"), int)
    return ModelInfo(model=properties.get("lenet.model"),
                     recipe=recipe.get("name") if isinstance(recipe.get("name"), str) else None,
                     step=step if isinstance(step, int) and step >= 0 else None,
                     test_accuracy=_finite(_parsed(properties.get("lenet.test_accuracy"), float)),
                     weights_sha256=properties.get("lenet.weights_sha256"),
                     evaluation_weights=properties.get("lenet.evaluation_weights"),
                     trained_on_validation=recipe.get("train_on_validation") is True,
                     dataset=dataset, classes=tuple(classes),
                     dataset_sha256=dataset_sha256 if isinstance(dataset_sha256, dict) else {},
                     input_format=properties.get("lenet.input_format") or input_format(dataset, tuple(classes)))
