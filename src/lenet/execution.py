"""How a run computes, as opposed to what it learns: precision, layout, compilation, determinism, device.

torch is imported inside the functions that use it: the CLI reads PRECISIONS to build its options,
and `lenet --help` must not wait for torch to load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import TYPE_CHECKING, Iterator

from .errors import LenetError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "auto")
DEVICES = ("cpu", "cuda")
# cuBLAS gives reproducible matrix products only with a fixed workspace; with deterministic
# algorithms on, PyTorch refuses CUDA matmuls unless this is set before cuBLAS's first use.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a run computes, as opposed to what it learns (the Recipe).

    The same recipe and seed give the same curve whatever these say, up to floating-point
    rounding, so they are not part of the recipe and a run may resume with other settings.
    """
    precision: str = "fp32"       # "bf16": autocast convolutions and matrix products to bfloat16;
                                  # "auto": bf16 where the hardware has bf16 arithmetic (resolve_precision)
    channels_last: bool = True    # NHWC activations: the layout oneDNN and cuDNN convolve fastest
    compile: bool = False         # torch.compile the network (one-off compile time, faster steps);
                                  # its dropout masks come from another generator unless deterministic
    deterministic: bool = False   # bitwise-reproducible kernels only (CPU kernels already are)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise LenetError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def bf16(self) -> bool:
        assert self.precision != "auto", "resolve_precision first"
        return self.precision == "bf16"

    @property
    def memory_format(self) -> "torch.memory_format":
        import torch
        return torch.channels_last if self.channels_last else torch.contiguous_format


def resolve_device(device: "str | torch.device") -> "torch.device":
    """'cpu' or 'cuda', refusing CUDA when this machine has none."""
    import torch
    name = device.type if isinstance(device, torch.device) else device
    if name not in DEVICES:
        raise LenetError(f"--device must be 'cpu' or 'cuda', got {device!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise LenetError("--device cuda: no CUDA device is available on this machine")
    return torch.device(device)


def bf16_hardware(device: "torch.device") -> str | None:
    """What gives DEVICE bf16 arithmetic ("AMX", "AVX512-BF16", the GPU), or None where bf16 is emulated."""
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) if torch.cuda.is_bf16_supported() else None
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512-BF16"
    return None


def resolve_precision(execution: Execution, device: "torch.device") -> tuple[Execution, str]:
    """EXECUTION with "auto" precision decided for DEVICE, and a few words on why (for the log)."""
    if execution.precision != "auto":
        return execution, execution.precision
    hardware = bf16_hardware(device)
    chosen = "bf16" if hardware else "fp32"
    where = "this GPU" if device.type == "cuda" else "this CPU"
    reason = f"bf16 (auto: {hardware})" if hardware else f"fp32 (auto: no bf16 arithmetic on {where})"
    return dataclasses.replace(execution, precision=chosen), reason


def synchronize(device: "torch.device") -> None:
    """Wait for the device's queued work, so that a clock read afterwards includes it."""
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def deterministic_mode(device: "torch.device", compiled: bool) -> Iterator[None]:
    """The process-wide switches for bitwise-reproducible training on DEVICE, on for the block and
    then put back as they were, however it ends (the cuBLAS setting stays: cuBLAS reads it once)."""
    import torch
    deterministic, benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    if compiled:  # compiled dropout otherwise draws its masks from its own generator
        from torch._inductor import config as inductor_config  # imported here: it takes seconds
        fallback_random, inductor_config.fallback_random = inductor_config.fallback_random, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        if compiled:
            inductor_config.fallback_random = fallback_random
