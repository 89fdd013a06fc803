"""Export a model directory's evaluation weights to ONNX, torch.export or TorchScript; run an ONNX file.

Every format takes float32 images (N, 1, 28, 28) with a dynamic batch dimension and returns logits
(N, 10); what the input must look like is written into the file's metadata (INPUT_FORMAT).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .checkpoint import load_model
from .data import atomic_write_bytes
from .errors import LenetError
from .models import NUM_CLASSES

FORMATS = ("onnx", "pt2", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "logits"
INPUT_FORMAT = ("images: float32 (N, 1, 28, 28), white ink on black, pixel / 255 in [0, 1], the digit "
                "normalized as MNIST (longer side 20 px, centred by centre of mass in 28x28; "
                "`lenet predict` and lenet.preprocess do this); output logits: float32 (N, 10), "
                "softmax gives the probabilities of classes 0-9")
ONNX_OPSET = 18


def is_onnx_file(source: str | Path) -> bool:
    """Whether SOURCE names an exported ONNX file rather than a model directory."""
    return Path(source).suffix.lower() == ".onnx"


def export_metadata(metadata: dict) -> dict[str, str]:
    """String key/values describing the exported network (stored in the exported file)."""
    recipe = metadata["recipe"]
    return {
        "lenet.model": recipe["model"],
        "lenet.recipe": json.dumps(recipe, sort_keys=True),
        "lenet.step": str(metadata["step"]),
        "lenet.test_accuracy": str(metadata.get("metrics", {}).get("test_accuracy", "")),
        "lenet.weights_sha256": metadata["weights_sha256"],
        "lenet.evaluation_weights": metadata.get("evaluation_weights", "trained"),
        "lenet.input_format": INPUT_FORMAT,
    }


def _parsed(text: str | None, parse: Callable[[str], object]) -> object:
    try:
        return parse(text) if text else None
    except (ValueError, RecursionError):
        return None


def onnx_model_info(properties: dict[str, str]) -> dict:
    """What an ONNX file's lenet.* properties (export_metadata) say, each value None when missing or
    unreadable: the file may come from elsewhere, and that is no reason to refuse a model that predicts."""
    recipe = _parsed(properties.get("lenet.recipe"), json.loads)
    return {"model": properties.get("lenet.model"), "recipe": recipe.get("name") if isinstance(recipe, dict) else None,
            "step": _parsed(properties.get("lenet.step"), int),
            "test_accuracy": _parsed(properties.get("lenet.test_accuracy"), float),
            "weights_sha256": properties.get("lenet.weights_sha256"),
            "evaluation_weights": properties.get("lenet.evaluation_weights")}


def export_onnx(model: nn.Module, metadata: dict) -> bytes:
    import onnx
    # The exporter lists optional torchvision operators it could not register; lenet uses none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.cpu().eval(), (torch.zeros(2, 1, 28, 28),), dynamo=True, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=ONNX_OPSET)
    proto = program.model_proto
    for key, value in export_metadata(metadata).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_program(model: nn.Module, metadata: dict) -> bytes:
    """A torch.export ExportedProgram (.pt2), PyTorch's successor to TorchScript: load it with
    torch.export.load(path).module(); the metadata is the extra file lenet.json."""
    batch = torch.export.Dim("batch", min=1)
    # Contiguous weights: the archive's writer mishandles channels-last ones (a warning, and views).
    plain = model.cpu().eval().to(memory_format=torch.contiguous_format)
    program = torch.export.export(plain, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    archive = io.BytesIO()
    torch.export.save(program, archive,
                      extra_files={"lenet.json": json.dumps(export_metadata(metadata), sort_keys=True)})
    return archive.getvalue()


def export_torchscript(model: nn.Module, metadata: dict) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer notes TF padding is computed from fixed sizes
        traced = torch.jit.trace(model.cpu().eval(), torch.zeros(2, 1, 28, 28))
    archive = io.BytesIO()
    torch.jit.save(traced, archive, _extra_files={"lenet.json": json.dumps(export_metadata(metadata), sort_keys=True)})
    return archive.getvalue()


def export_model(model_dir: str | Path, fmt: str, path: str | Path) -> Path:
    """Export MODEL_DIR's newest evaluation weights (the moving average when the recipe keeps one)."""
    if fmt not in FORMATS:
        raise LenetError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx" and not is_onnx_file(path):  # predict, eval, ensemble and serve go by the suffix
        raise LenetError(f"{path}: an ONNX export's name must end in .onnx, "
                         f"which tells lenet it from a model directory")
    model, metadata = load_model(model_dir)
    exporter = {"onnx": export_onnx, "pt2": export_program, "torchscript": export_torchscript}[fmt]
    path = Path(path)
    atomic_write_bytes(path, exporter(model, metadata))
    return path


class OnnxPredictor:
    """An exported ONNX file run by onnxruntime on the CPU: float (N, 28, 28) in [0, 1] -> probabilities."""

    def __init__(self, path: str | Path):
        import onnxruntime
        self.path = Path(path)
        if not self.path.is_file():
            raise LenetError(f"{path}: no such ONNX file")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise LenetError(f"{path}: not a loadable ONNX model ({str(error).splitlines()[0]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 28, 28]:
            raise LenetError(f"{path}: expected one input of shape (N, 1, 28, 28), "
                             f"got {[(i.name, i.shape) for i in inputs]}")
        outputs = self.session.get_outputs()
        if len(outputs) != 1 or list(outputs[0].shape[1:]) != [NUM_CLASSES]:
            raise LenetError(f"{path}: expected one output of shape (N, {NUM_CLASSES}), "
                             f"got {[(o.name, o.shape) for o in outputs]}")
        self.input_name = inputs[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def logits(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits (N, 10) for float (N, 28, 28) or (N, 1, 28, 28) inputs in [0, 1]."""
        images = np.asarray(inputs, dtype=np.float32).reshape(-1, 1, 28, 28)
        return torch.from_numpy(self.session.run(None, {self.input_name: images})[0]).float()

    def __call__(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(inputs), dim=1)
