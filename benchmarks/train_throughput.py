"""Train tutorial-cnn for a fixed number of steps and print JSON: images/s, accuracy, peak memory.

Usage: LENET_DATA_DIR=... python benchmarks/train_throughput.py [--steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import torch

from lenet import get_recipe, load_mnist
from lenet.recipes import override
from lenet.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = load_mnist()
    recipe = override(get_recipe("tutorial-cnn"), total_steps=args.steps, log_every_steps=50,
                      eval_every_steps=args.steps, checkpoint_every_steps=args.steps)
    rates = []
    with tempfile.TemporaryDirectory() as model_dir:
        start = time.perf_counter()
        result = train(recipe, model_dir, data, args.device,
                       report=lambda e: rates.append(e["images_per_s"]) if e["kind"] == "log" else None)
        wall_s = time.perf_counter() - start
    steady = rates[2:] or rates  # skip the first intervals (warm-up)
    print(json.dumps({"model": "tutorial-cnn", "steps": args.steps, "batch_size": recipe.batch_size,
                      "device": args.device, "threads": torch.get_num_threads(),
                      "train_images_per_s": round(sum(steady) / len(steady)),
                      "wall_time_s": round(wall_s, 1), "test_accuracy": result["test_accuracy"],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
