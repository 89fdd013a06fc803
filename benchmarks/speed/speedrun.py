"""Time to a target test accuracy: train a recipe once per seed and report, per run and overall,
the training time (steps only: no process start, data loading, compilation or evaluation, each
reported apart) and the test accuracy; prints one JSON object.

Usage: LENET_DATA_DIR=... python benchmarks/speed/speedrun.py [--recipe fast] [--seeds 5] [--target 0.99]
       [--device cpu|cuda] [--precision fp32|bf16] [--compile] [--steps N] [--model NAME] [--tta] [--keep DIR]
       [--dataset mnist|fashion-mnist|idx [--data-dir DIR]]
--keep DIR keeps each run's model directory as DIR/seed-N (for `lenet ensemble DIR/seed-*`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lenet import get_recipe, load_dataset
from lenet.results import StepLogged
from lenet.datasets import DATASET_NAMES
from lenet.checkpoint import load_model
from lenet.evaluation import evaluate
from lenet.recipes import override
from lenet.execution import Execution, resolve_device
from lenet.training import train
from lenet.testing.machine import describe


def one_run(recipe, model_dir: Path, data, device: str, execution: Execution, tta: bool) -> dict:
    def progress(event) -> None:  # a line every tenth of the run, so long runs show they are alive
        if isinstance(event, StepLogged) and event.step % max(recipe.total_steps // 10, 1) < recipe.log_every_steps:
            print(f"seed {recipe.seed}: step {event.step}/{recipe.total_steps}, loss {event.total_loss:.3f}",
                  file=sys.stderr, flush=True)

    result = train(recipe, model_dir, data, device, report=progress, tensorboard=False, execution=execution)
    run = {"seed": recipe.seed, "test_accuracy": result["test_accuracy"],
           "train_s": round(result["train_seconds"], 3), "compile_s": round(result["compile_seconds"], 2)}
    if tta:
        model, _ = load_model(model_dir, device)
        run["test_accuracy_tta"] = evaluate(model, data.test_images, data.test_labels, tta=True).accuracy
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.99, help="mean test accuracy to reach")
    parser.add_argument("--steps", type=int, help="override the recipe's total_steps")
    parser.add_argument("--model", help="override the recipe's network (see `lenet models`)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES, help="what to train on (default mnist)")
    parser.add_argument("--data-dir", help="the data set's four IDX files (see `lenet train --help`)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--tta", action="store_true", help="also report test-time-augmented accuracy")
    parser.add_argument("--keep", metavar="DIR", help="keep the model directories as DIR/seed-N")
    args = parser.parse_args()
    resolve_device(args.device)
    started = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir).to(args.device)
    load_s = time.perf_counter() - started
    execution = Execution(args.precision, True, args.compile)
    recipe = override(get_recipe(args.recipe), dataset=args.dataset)
    if args.steps:
        recipe = override(recipe, total_steps=args.steps)
    if args.model:
        recipe = override(recipe, model=args.model)
    # Validation only at the end, so that training time is training.
    recipe = override(recipe, eval_every_steps=recipe.total_steps, checkpoint_every_steps=recipe.total_steps)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        seeded = override(recipe, seed=seed)
        if args.keep:
            runs.append(one_run(seeded, Path(args.keep) / f"seed-{seed}", data, args.device, execution, args.tta))
        else:
            with tempfile.TemporaryDirectory() as model_dir:
                runs.append(one_run(seeded, Path(model_dir), data, args.device, execution, args.tta))
        print(f"seed {seed}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    accuracies = [r["test_accuracy"] for r in runs]
    summary = {
        "recipe": args.recipe, "dataset": args.dataset, "model": recipe.model, "steps": recipe.total_steps,
        "batch_size": recipe.batch_size,
        "device": args.device, "precision": args.precision, "compile": args.compile,
        "seeds": len(runs), "target": args.target,
        "mean_test_accuracy": statistics.mean(accuracies), "min_test_accuracy": min(accuracies),
        "max_test_accuracy": max(accuracies), "target_met": statistics.mean(accuracies) >= args.target,
        "median_train_s": statistics.median(r["train_s"] for r in runs),
        "data_load_s": round(load_s, 2), "runs": runs, **describe(args.device),
    }
    if args.tta:
        summary["mean_test_accuracy_tta"] = statistics.mean(r["test_accuracy_tta"] for r in runs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
