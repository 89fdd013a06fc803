"""TensorFlow-exact SAME/VALID convolution and pooling, and the tutorials' initializers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = ("SAME", "VALID")


def same_padding(in_size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) that TensorFlow's SAME adds along one axis.

    TF makes the output ceil(in / stride) long and, when the total padding is odd,
    puts the extra row or column at the bottom/right (after), not the top/left.
    """
    out_size = math.ceil(in_size / stride)
    total = max((out_size - 1) * stride + kernel_size - in_size, 0)
    return total // 2, total - total // 2


def output_size(in_size: int, kernel_size: int, stride: int, padding: str) -> int:
    """Output length along one axis: SAME ceil(in/s), VALID ceil((in-k+1)/s), as TF defines them."""
    if padding == "SAME":
        return math.ceil(in_size / stride)
    return math.ceil((in_size - kernel_size + 1) / stride)


def _pad_same(x: torch.Tensor, kernel_size: int, stride: int, value: float) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel_size, stride)
    left, right = same_padding(x.shape[-1], kernel_size, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return padding


class Conv2d(nn.Module):
    """2-D convolution with TF padding semantics; weights stored as PyTorch's (out, in, k, k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: str = "SAME", bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = _check_padding(padding)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.xavier_uniform_(self.weight)
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:  # a following BatchNorm's shift does the bias's job
            self.register_parameter("bias", None)
        # Stride 1 with an odd kernel pads symmetrically: let the conv kernel pad (no copy).
        self._symmetric_pad = kernel_size // 2 if (stride == 1 and kernel_size % 2 == 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "VALID":
            return F.conv2d(x, self.weight, self.bias, self.stride)
        if self._symmetric_pad is not None:
            return F.conv2d(x, self.weight, self.bias, self.stride, self._symmetric_pad)
        return F.conv2d(_pad_same(x, self.kernel_size, self.stride, 0.0), self.weight, self.bias, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class MaxPool2d(nn.Module):
    """Max pooling with TF padding: SAME pads with -inf, so padded cells never win."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: str = "SAME"):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "SAME":
            x = _pad_same(x, self.kernel_size, self.stride, float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(nn.Module):
    """Average pooling with TF padding: SAME averages only the real cells under each window."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: str = "SAME"):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "VALID":
            return F.avg_pool2d(x, self.kernel_size, self.stride)
        padded = _pad_same(x, self.kernel_size, self.stride, 0.0)
        if padded is x:
            return F.avg_pool2d(x, self.kernel_size, self.stride)
        # Sum over the window divided by how many real (unpadded) cells it covers.
        ones = _pad_same(torch.ones_like(x[:1, :1]), self.kernel_size, self.stride, 0.0)
        window_sum = F.avg_pool2d(padded, self.kernel_size, self.stride, divisor_override=1)
        real_cells = F.avg_pool2d(ones, self.kernel_size, self.stride, divisor_override=1)
        return window_sum / real_cells

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


INITIALIZERS = ("truncated_normal", "glorot_uniform", "standard_normal")


def init_weight(weight: torch.Tensor, initializer: str, stddev: float = 0.1) -> None:
    """Fill a weight in place the way the tutorials do.

    truncated_normal: tf.truncated_normal(stddev=0.1) of seeds 000/001/003, which re-draws
      values beyond two standard deviations; sampling the normal restricted to [-2σ, 2σ]
      gives the same distribution.
    glorot_uniform: tf.layers' default kernel initializer (seed 004); fans count the kernel area.
    standard_normal: tf.random_normal with stddev 1 (seed 002).
    """
    with torch.no_grad():
        if initializer == "truncated_normal":
            nn.init.trunc_normal_(weight, mean=0.0, std=stddev, a=-2 * stddev, b=2 * stddev)
        elif initializer == "glorot_uniform":
            nn.init.xavier_uniform_(weight)
        elif initializer == "standard_normal":
            nn.init.normal_(weight, 0.0, 1.0)
        else:
            raise ValueError(f"initializer must be one of {INITIALIZERS}, got {initializer!r}")


def init_bias(bias: torch.Tensor, initializer: str, value: float) -> None:
    """Constant biases, except seed 002 which draws them from a standard normal too."""
    with torch.no_grad():
        if initializer == "standard_normal":
            nn.init.normal_(bias, 0.0, 1.0)
        else:
            nn.init.constant_(bias, value)
