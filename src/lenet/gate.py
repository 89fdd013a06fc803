"""The digit gate: a small network beside the classifier that says how likely an input is a digit at all.

A classifier of ten digits names a digit for anything: softmax has no "none of these", and a letter
or a smiley often gets 0.9. Its own probabilities separate non-digits poorly (docs/declining.md), so
lenet asks a second, independent question. The gate is trained once, by `python -m lenet.gate_training`,
on MNIST's training digits against non-digits generated in code (lenet.negatives: glyphs of fonts that
ship with matplotlib and Pillow, shapes, scribbles, textures), and ships inside the package as
digit_gate.safetensors (weights, and in its metadata the calibration fitted on validation data). It
sits beside every network: the seed recipes' networks and their figures are untouched.

Its output is calibrated on a validation mix of as many digits as non-digits, so "digit_probability"
is the probability that an input is a digit when digits and non-digits are equally likely a priori.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

GATE_FILE = Path(__file__).with_name("digit_gate.safetensors")


class DigitGate(nn.Module):
    """conv 5x5 (16) -> pool -> conv 5x5 (32) -> pool -> fc HIDDEN -> one logit: is it a digit?"""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # (B, 16, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # (B, 32, 7, 7)
        x = F.relu(self.fc1(x.flatten(1)))           # (B, hidden)
        return self.fc2(x).squeeze(1)                # (B,)


@dataclass(frozen=True)
class GateCalibration:
    """digit_probability = sigmoid(SCALE * logit + BIAS) (Platt scaling, fitted on validation data)."""
    scale: float
    bias: float


class CalibratedGate(nn.Module):
    """The gate with its calibration: float images (B, 1, 28, 28) -> the probability (B,) each is a digit.
    What inference runs, and what an export carries beside the classifier."""

    def __init__(self, gate: DigitGate, calibration: GateCalibration):
        super().__init__()
        self.gate = gate
        self.register_buffer("scale", torch.tensor(calibration.scale))
        self.register_buffer("bias", torch.tensor(calibration.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale * self.gate(x) + self.bias)


def save_gate(gate: DigitGate, calibration: GateCalibration, path: str | Path, provenance: dict[str, str]) -> None:
    """Write the gate's weights, its calibration and how it was made (PROVENANCE) into one safetensors file."""
    from safetensors.torch import save_file
    metadata = {"scale": repr(calibration.scale), "bias": repr(calibration.bias), **provenance}
    save_file({k: v.detach().cpu().contiguous() for k, v in gate.state_dict().items()}, str(path), metadata)


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> tuple[dict[str, torch.Tensor], GateCalibration, dict[str, str]]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as archive:
        metadata = archive.metadata() or {}
        tensors = {key: archive.get_tensor(key) for key in archive.keys()}
    return tensors, GateCalibration(float(metadata["scale"]), float(metadata["bias"])), metadata


def load_gate(device: str | torch.device = "cpu", path: Path = GATE_FILE) -> CalibratedGate | None:
    """The shipped gate on DEVICE in eval mode, or None when the package holds none (a checkout that
    has not trained it): the models then answer without declining non-digits."""
    if not path.exists():
        return None
    tensors, calibration, metadata = _load(path)
    gate = DigitGate(hidden=tensors["fc1.weight"].shape[0])
    gate.load_state_dict(tensors)
    return CalibratedGate(gate, calibration).to(device).eval()


def gate_provenance(path: Path = GATE_FILE) -> dict[str, str]:
    """How the shipped gate was made (its file's metadata); empty without one."""
    return dict(_load(path)[2]) if path.exists() else {}
