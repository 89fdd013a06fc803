"""Train seed recipes with their full schedules and print one JSON object per recipe (accuracy, wall time).

Usage: python benchmarks/reproduce.py [--recipes mlp-ema,lenet5,...] [--device cpu|cuda] [--out-dir runs/reproduce]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lenet import RECIPES, load_mnist
from lenet.recipes import override
from lenet.training import train


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{model}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", default="runs/reproduce")
    parser.add_argument("--steps", type=int, help="shorten every schedule to this many steps (reported)")
    args = parser.parse_args()
    data = load_mnist()
    for name in args.recipes.split(","):
        recipe = RECIPES[name]
        if args.steps:
            recipe = override(recipe, total_steps=args.steps)
        model_dir = Path(args.out_dir) / name
        validation = {}
        start = time.perf_counter()
        result = train(recipe, model_dir, data, args.device,
                       report=lambda e: validation.__setitem__(e["step"], e["accuracy"])
                       if e["kind"] == "validation" else None)
        print(json.dumps({"recipe": name, "steps": result["step"], "full_schedule": not args.steps,
                          "test_accuracy": result["test_accuracy"],
                          "validation_accuracy": result["validation_accuracy"],
                          "validation_curve": validation,
                          "wall_time_s": round(time.perf_counter() - start, 1), "device": args.device,
                          "machine": machine(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
