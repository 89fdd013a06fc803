"""Train seed recipes with their full schedules and print one JSON object per recipe (accuracy, wall time).

Usage: python benchmarks/accuracy/reproduce.py [--recipes mlp-ema,lenet5,...] [--device cpu|cuda]
       [--out-dir runs/reproduce] [--precision fp32|bf16] [--compile] [--steps N]
       [--dataset mnist|fashion-mnist|idx [--data-dir DIR]]
The default is the six seed recipes (not `fast` and `best`, which benchmarks/speed/speedrun.py measures).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lenet import get_recipe, load_dataset
from lenet.results import Validated
from lenet.datasets import DATASET_NAMES
from lenet.recipes import SEED_RECIPES, override
from lenet.execution import Execution
from lenet.training import train
from lenet.testing.machine import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", default=",".join(SEED_RECIPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES, help="what to train on (default mnist)")
    parser.add_argument("--data-dir", help="the data set's four IDX files (see `lenet train --help`)")
    parser.add_argument("--out-dir", default="runs/reproduce")
    parser.add_argument("--steps", type=int, help="shorten every schedule to this many steps (reported)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    execution = Execution(args.precision, True, args.compile)
    # Every name checked before anything trains: a typo in the last one must not wait hours to show.
    recipes = [get_recipe(name) for name in args.recipes.split(",")]
    data = load_dataset(args.dataset, args.data_dir)
    for recipe in recipes:
        name = recipe.name
        recipe = override(recipe, dataset=args.dataset)
        if args.steps:
            recipe = override(recipe, total_steps=args.steps)
        model_dir = Path(args.out_dir) / name
        validation = {}

        def record(event, recipe=recipe, validation=validation) -> None:
            """Keep the validation curve, and show it on stderr: full schedules run for up to an hour."""
            if isinstance(event, Validated):
                validation[event.step] = event.accuracy
                print(f"{recipe.name}: step {event.step}/{recipe.total_steps}, validation accuracy "
                      f"{event.accuracy:.4f}", file=sys.stderr, flush=True)

        start = time.perf_counter()
        result = train(recipe, model_dir, data, args.device, execution=execution, report=record)
        print(json.dumps({"recipe": name, "dataset": args.dataset, "steps": result["step"],
                          "full_schedule": not args.steps,
                          "test_accuracy": result["test_accuracy"],
                          "validation_accuracy": result["validation_accuracy"],
                          "validation_curve": validation,
                          "train_s": round(result["train_seconds"], 1),
                          "compile_s": round(result["compile_seconds"], 1),
                          "wall_time_s": round(time.perf_counter() - start, 1), "device": args.device,
                          "precision": args.precision, "compile": args.compile, **describe(args.device)}),
              flush=True)


if __name__ == "__main__":
    main()
