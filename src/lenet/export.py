"""Export a model directory's evaluation weights to ONNX, torch.export or TorchScript.

Every format takes float32 images (N, 1, 28, 28) with a dynamic batch dimension and returns logits
(N, classes): 10 for MNIST; what the input must look like, the data set and its class names, the
calibration temperature and the threshold for answering are written into the file's metadata
(onnx_format.export_properties). An ONNX file of a model of digits also returns the digit gate's
probabilities (N,) as its second output, so that it declines what its model directory declines.
Running an exported ONNX file is inference.open_model's job. torch is imported by the exporters:
the CLI reads FORMATS to build its options, and `lenet --help` must not wait for torch to load.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LenetError
from .files import atomic_write_bytes, check_output_path
from .inference import LoadedModel, gate_for, is_onnx_file, open_model
from .onnx_format import DIGIT_OUTPUT, export_properties

if TYPE_CHECKING:
    from torch import nn

FORMATS = ("onnx", "pt2", "torchscript")
INPUT_NAME, OUTPUT_NAME = "images", "logits"
ONNX_OPSET = 18


def export_onnx(model: "nn.Module", properties: dict[str, str], gate: "nn.Module | None" = None) -> bytes:
    """The network as ONNX; with GATE (a model of digits), a second output DIGIT_OUTPUT (N,): the digit
    gate's probabilities, so that the file declines non-digits exactly as its model directory does."""
    import onnx
    import torch
    # The exporter lists optional torchvision operators it could not register; lenet uses none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_with_gate(model, gate).cpu().eval(), (torch.zeros(2, 1, 28, 28),), dynamo=True,
                                    verbose=False, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME] + ([DIGIT_OUTPUT] if gate is not None else []),
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=ONNX_OPSET)
    proto = program.model_proto
    for key, value in properties.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _with_gate(network: "nn.Module", gate: "nn.Module | None") -> "nn.Module":
    """NETWORK, returning (logits, GATE's probabilities) when there is a GATE."""
    from torch import nn
    if gate is None:
        return network

    class WithGate(nn.Module):
        def __init__(self):
            super().__init__()
            self.network, self.gate = network, gate

        def forward(self, images):
            return self.network(images), self.gate(images)
    return WithGate()


def export_program(model: "nn.Module", properties: dict[str, str]) -> bytes:
    """A torch.export ExportedProgram (.pt2), PyTorch's successor to TorchScript: load it with
    torch.export.load(path).module(); the metadata is the extra file lenet.json."""
    import torch
    batch = torch.export.Dim("batch", min=1)
    # Contiguous weights: the archive's writer mishandles channels-last ones (a warning, and views).
    plain = model.cpu().eval().to(memory_format=torch.contiguous_format)
    program = torch.export.export(plain, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    archive = io.BytesIO()
    torch.export.save(program, archive, extra_files={"lenet.json": json.dumps(properties, sort_keys=True)})
    return archive.getvalue()


def export_torchscript(model: "nn.Module", properties: dict[str, str]) -> bytes:
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer notes TF padding is computed from fixed sizes
        traced = torch.jit.trace(model.cpu().eval(), torch.zeros(2, 1, 28, 28))
    archive = io.BytesIO()
    torch.jit.save(traced, archive, _extra_files={"lenet.json": json.dumps(properties, sort_keys=True)})
    return archive.getvalue()


def export_model(model: LoadedModel | str | Path, fmt: str, path: str | Path) -> Path:
    """Export the evaluation weights (the moving average when the recipe keeps one) of MODEL (from
    open_model, or a model directory to open: its newest intact checkpoint) into the file PATH, which
    may not be one of a model directory's files nor an existing file of another kind than FMT."""
    if fmt not in FORMATS:
        raise LenetError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx" and not is_onnx_file(path):  # predict, eval, ensemble and serve go by the suffix
        raise LenetError(f"{path}: an ONNX export's name must end in .onnx, "
                         f"which tells lenet it from a model directory")
    path = check_output_path(path, fmt)
    # The network's weights are fp32 whatever precision the model infers in: an export holds those.
    model = model if isinstance(model, LoadedModel) else open_model(model, precision="fp32")
    network = model.network("export")
    properties = export_properties(model.checkpoint)
    if fmt == "onnx":
        payload = export_onnx(network, properties, gate_for(model.info.dataset, "cpu"))
    else:
        payload = {"pt2": export_program, "torchscript": export_torchscript}[fmt](network, properties)
    atomic_write_bytes(path, payload)
    return path
