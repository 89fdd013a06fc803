"""Per-layer output shapes, parameter counts and connections (multiply-adds) of a network."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import AvgPool2d, Conv2d, MaxPool2d
from .models import model_device

_LAYER_TYPES = (Conv2d, MaxPool2d, AvgPool2d, nn.Linear)


def _connections(layer: nn.Module, output: torch.Tensor) -> int:
    """Connections per example as LeCun et al. count them: each output unit's inputs, plus its bias."""
    outputs = math.prod(output.shape[1:])
    if isinstance(layer, Conv2d):
        return outputs * (layer.in_channels * layer.kernel_size ** 2 + (layer.bias is not None))
    if isinstance(layer, nn.Linear):
        return outputs * (layer.in_features + 1)
    return outputs * layer.kernel_size ** 2  # a pooling unit reads its window


@torch.no_grad()
def summarize(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    """{"input_shape", "layers": [{"name", "type", "output_shape", "params", "connections"}], "total_params",
    "total_connections"} of MODEL run on one input of INPUT_SHAPE (C, H, W)."""
    layers: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, _LAYER_TYPES):
            def record(module, _inputs, output, name=name):
                layers.append({"name": name, "type": type(module).__name__,
                               "output_shape": list(output.shape[1:]),
                               "params": sum(p.numel() for p in module.parameters()),
                               "connections": _connections(module, output)})
            hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape, device=model_device(model)))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {"input_shape": list(input_shape), "layers": layers,
            "total_params": sum(p.numel() for p in model.parameters()),
            "total_connections": sum(layer["connections"] for layer in layers)}


def format_summary(summary: dict, title: str) -> str:
    """The summary as an aligned text table."""
    header = ("layer", "type", "output shape", "params", "connections")
    rows = [(layer["name"], layer["type"], "x".join(map(str, layer["output_shape"])),
             f"{layer['params']:,}", f"{layer['connections']:,}") for layer in summary["layers"]]
    rows.append(("total", "", "", f"{summary['total_params']:,}", f"{summary['total_connections']:,}"))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
