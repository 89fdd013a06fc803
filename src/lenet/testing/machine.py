"""What a benchmark ran on, for its JSON: CPU model, family and vector flags, threads, GPU, torch version.

Which implementation is faster depends on the CPU kind (AVX2 only, AVX-512, AVX512-BF16, AMX), so
every figure carries the kind it was measured on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# The flags that decide which kernels oneDNN, MKL and onnxruntime pick.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                "amx_int8")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    path = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in (path.read_text().splitlines() if path.exists() else []):
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor()


def cpu_kind() -> dict:
    """CPU vendor, family, model number and the vector flags it has."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {"cpu": cpu_model(), "vendor": info.get("vendor_id"), "cpu_family": info.get("cpu family"),
            "cpu_model_number": info.get("model"), "cpu_flags": [f for f in VECTOR_FLAGS if f in flags],
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def describe(device: str = "cpu") -> dict:
    # The load average shows another process on the machine: two processes each with as many
    # threads as cores can run 10x slower than one (OpenMP threads wait on descheduled peers).
    return {**cpu_kind(), "threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "torch": torch.__version__}
