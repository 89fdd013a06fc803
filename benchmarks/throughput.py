"""lenet's training and inference speed on the tutorial CNN, in images/s; prints one JSON object.

Training: `lenet.training.train` on tutorial-cnn with its own recipe (SGD + decay + L2 + EMA,
batch 100) for --steps steps; the rate is averaged over the log intervals after the first two
(warm-up). Inference: the evaluation weights over the 10,000 test images in batches of
--infer-batch, after one warm-up batch.

Usage: LENET_DATA_DIR=... python benchmarks/throughput.py [--steps 300] [--device cpu|cuda] [--recipe tutorial-cnn]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from lenet import get_recipe, load_mnist
from lenet.checkpoint import load_model
from lenet.evaluation import batched_logits
from lenet.recipes import override
from lenet.training import train


def measure(recipe_name: str, steps: int, device: str, infer_batch: int) -> dict:
    data = load_mnist()
    recipe = override(get_recipe(recipe_name), total_steps=steps, log_every_steps=max(steps // 10, 1),
                      eval_every_steps=steps, checkpoint_every_steps=steps)
    rates = []
    with tempfile.TemporaryDirectory() as model_dir:
        start = time.perf_counter()
        result = train(recipe, model_dir, data, device, tensorboard=False,
                       report=lambda e: rates.append(e["images_per_s"]) if e["kind"] == "log" else None)
        wall_s = time.perf_counter() - start
        model, _ = load_model(model_dir, device)
    images = data.test_images.to(device)
    batched_logits(model, images[:infer_batch], infer_batch)  # warm-up
    start = time.perf_counter()
    batched_logits(model, images, infer_batch).cpu()
    infer_rate = len(images) / (time.perf_counter() - start)
    steady = rates[2:] or rates
    return {"implementation": "lenet", "recipe": recipe_name, "steps": steps, "batch_size": recipe.batch_size,
            "device": device, "threads": torch.get_num_threads(),
            "train_images_per_s": round(sum(steady) / len(steady)), "infer_images_per_s": round(infer_rate),
            "test_accuracy": result["test_accuracy"], "wall_time_s": round(wall_s, 1), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--recipe", default="tutorial-cnn")
    parser.add_argument("--infer-batch", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(measure(args.recipe, args.steps, args.device, args.infer_batch)))


if __name__ == "__main__":
    main()
