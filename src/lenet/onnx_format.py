"""What a file exported by lenet holds: its lenet.* metadata properties (written and read back), and
an ONNX file's weights, read from the protobuf without importing onnx.

The properties are the same for every export format: an ONNX file keeps them as metadata_props, a
.pt2 or TorchScript archive as its extra file lenet.json. Importable without torch or onnx.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .datasets import DATASET_NAMES, KNOWN_DATASETS, default_classes
from .errors import LenetError
from .idx import NUM_CLASSES
from .model_info import ModelInfo, input_format

if TYPE_CHECKING:
    from .checkpoint import Checkpoint


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
        "lenet.temperature": repr(checkpoint.temperature),
        "lenet.min_confidence": repr(checkpoint.min_confidence),
    }


# The name of an export's second output, the digit gate's probabilities (N,), in a model of digits.
DIGIT_OUTPUT = "digit_probability"


def calibration_from_properties(properties: dict[str, str], fallback_min_confidence: float) -> tuple[float, float]:
    """(temperature, min_confidence) an exported file records; 1.0 and FALLBACK_MIN_CONFIDENCE where it
    records none or a value out of range (a file from elsewhere still predicts)."""
    temperature = _finite(_parsed(properties.get("lenet.temperature"), float))
    threshold = _finite(_parsed(properties.get("lenet.min_confidence"), float))
    return (temperature if temperature is not None and temperature > 0 else 1.0,
            threshold if threshold is not None and 0.0 <= threshold <= 1.0 else fallback_min_confidence)


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


def expected_outputs(properties: dict[str, str], dataset: str, outputs: int) -> int:
    """How many outputs an ONNX file of DATASET with these lenet.* PROPERTIES must have: a known set
    has its number of classes, a user's set as many as its recorded class names; a file that records
    none is taken at its word (OUTPUTS)."""
    named = _parsed(properties.get("lenet.classes"), json.loads)
    known = KNOWN_DATASETS.get(dataset)
    return len(known.classes) if known else len(named) if isinstance(named, list) else outputs


# ONNX's protobuf numbering (onnx.proto): ModelProto.graph 7; GraphProto.node 1, .initializer 5;
# NodeProto.attribute 5; AttributeProto.t 5; TensorProto.data_type 2, .float_data 4, .raw_data 9,
# .double_data 10, .name 8. Floating data types: FLOAT 1, FLOAT16 10, DOUBLE 11, BFLOAT16 16.
_ONNX_RAW_DTYPES = {1: np.dtype("<f4"), 10: np.dtype("<f2"), 11: np.dtype("<f8"), 16: np.dtype("<u2")}


def onnx_float_tensors(payload: bytes) -> Iterator[tuple[str, np.ndarray]]:
    """(name, values) of the floating-point weights in an ONNX file: its graph's initializers and its
    Constant nodes' tensors. Read from the protobuf directly: importing the onnx package would add
    about a second to every `lenet predict --model x.onnx`. PAYLOAD must be well-formed protobuf
    (onnxruntime has parsed it)."""
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
