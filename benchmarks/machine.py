"""What a benchmark ran on, for its JSON: CPU model, threads, GPU, torch version."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


def describe(device: str = "cpu") -> dict:
    return {"cpu": cpu_model(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "torch": torch.__version__}
