"""Random distortions of training batches, made on the training device in one resampling per batch.

"affine": rotation, scale, shear and translation; "elastic": the same affine map plus the elastic
distortion of Simard, Steinkraus and Platt (2003): a random displacement field, smoothed with a
Gaussian, scaled to a few pixels. Both draw from torch's generator of the batch's device, so the
checkpointed RNG state makes resumed runs draw the same distortions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .recipes import AUGMENTATIONS

MAX_ROTATION_DEGREES = 10.0
MAX_SCALE_CHANGE = 0.10          # zoom in [0.9, 1.1]
MAX_SHEAR_DEGREES = 10.0
MAX_SHIFT_PIXELS = 2.0
ELASTIC_ALPHA_PIXELS = 34.0      # Simard et al.'s alpha and sigma for 28x28 digits:
ELASTIC_SIGMA_PIXELS = 4.0       # about 1.4 pixels of typical displacement after smoothing


def _uniform(n: int, half_width: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * half_width


def random_affine_matrices(n: int, size: int, device: torch.device) -> torch.Tensor:
    """(N, 2, 3) matrices for F.affine_grid: where each output pixel samples the input, in [-1, 1] units."""
    angle = _uniform(n, math.radians(MAX_ROTATION_DEGREES), device)
    shear = _uniform(n, math.radians(MAX_SHEAR_DEGREES), device)
    zoom = 1 + _uniform(n, MAX_SCALE_CHANGE, device)
    shift = _uniform(2 * n, MAX_SHIFT_PIXELS * 2 / size, device).reshape(n, 2)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # Rotation times horizontal shear, divided by the zoom (the grid maps output to input).
    theta = torch.stack([
        torch.stack([cos, cos * tan - sin, shift[:, 0]], dim=1),
        torch.stack([sin, sin * tan + cos, shift[:, 1]], dim=1),
    ], dim=1)
    theta[:, :, :2] /= zoom[:, None, None]
    return theta


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def random_elastic_offsets(n: int, size: int, device: torch.device) -> torch.Tensor:
    """(N, size, size, 2) smooth random displacements in grid units, to add to an affine grid."""
    noise = torch.rand(n, 2, size, size, device=device) * 2 - 1
    kernel = _gaussian_kernel(ELASTIC_SIGMA_PIXELS, device)
    radius = len(kernel) // 2
    # Separable blur: rows, then columns, each displacement component on its own (groups=2).
    noise = F.conv2d(noise, kernel.view(1, 1, 1, -1).repeat(2, 1, 1, 1), padding=(0, radius), groups=2)
    noise = F.conv2d(noise, kernel.view(1, 1, -1, 1).repeat(2, 1, 1, 1), padding=(radius, 0), groups=2)
    return (noise * ELASTIC_ALPHA_PIXELS * 2 / size).permute(0, 2, 3, 1)


def distort(images: torch.Tensor, kind: str) -> torch.Tensor:
    """Randomly distorted copies of float (N, 1, H, W) IMAGES ('none' returns them unchanged)."""
    if kind == "none":
        return images
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {kind!r}")
    n, size = images.shape[0], images.shape[-1]
    grid = F.affine_grid(random_affine_matrices(n, size, images.device), list(images.shape), align_corners=False)
    if kind == "elastic":
        grid = grid + random_elastic_offsets(n, size, images.device)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# Test-time augmentation: the image itself and its four one-pixel shifts.
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """IMAGES (N, C, H, W) moved DY rows down and DX columns right, with zeros shifted in."""
    if dy == dx == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + height, left:left + width]
