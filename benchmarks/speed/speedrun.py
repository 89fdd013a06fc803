"""Time to a target test accuracy: train a recipe once per seed and report, per run and overall,
the training time (steps only) and the test accuracy; prints one JSON object. Every other second
is reported apart: the imports, loading the data, each run's set-up (model, optimizer, model
directory), compilation, evaluation (validation and the test set, read once at the end) and the
checkpoint with its calibration.

--baseline runs the fastest public MNIST recipe (benchmarks/baselines/train_mnist_fast.py) once per
seed beside each of the recipe's runs, in the same process, and reports both and the ratio of their
median training times.

Usage: LENET_DATA_DIR=... python benchmarks/speed/speedrun.py [--recipe fast] [--seeds 5] [--target 0.99]
       [--baseline [--baseline-images N]] [--device cpu|cuda] [--precision fp32|bf16] [--compile]
       [--steps N] [--model NAME] [--tta] [--keep DIR] [--dataset mnist|fashion-mnist|idx [--data-dir DIR]]
--keep DIR keeps each run's model directory as DIR/seed-N (for `lenet ensemble DIR/seed-*`).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before torch and lenet load: the imports are seconds of their own

import argparse  # noqa: E402
import json  # noqa: E402
import runpy  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

# The first torch optimizer a process builds imports torch._dynamo (1.2-1.8 s on a 2-core Zen 2):
# imported here, with the rest, so that neither recipe's first run counts it as training.
import torch._dynamo  # noqa: E402, F401  (imports torch)

from lenet import get_recipe, load_dataset  # noqa: E402
from lenet.results import StepLogged, Tested, TrainingStarted  # noqa: E402
from lenet.datasets import DATASET_NAMES  # noqa: E402
from lenet.checkpoint import load_model  # noqa: E402
from lenet.evaluation import evaluate  # noqa: E402
from lenet.recipes import override  # noqa: E402
from lenet.execution import Execution, resolve_device  # noqa: E402
from lenet.training import train  # noqa: E402
from lenet.testing.machine import describe  # noqa: E402

BASELINE = Path(__file__).resolve().parent.parent / "baselines" / "train_mnist_fast.py"


def one_run(recipe, model_dir: Path, data, device: str, execution: Execution, tta: bool) -> dict:
    """Train RECIPE once; its test accuracy and the seconds of each phase, read from the training events."""
    clock: dict[str, float] = {}

    def progress(event) -> None:
        if isinstance(event, TrainingStarted):
            clock["started"] = time.perf_counter()
        elif isinstance(event, StepLogged):
            clock["last_step"] = time.perf_counter()
            if event.step == 1:  # the first step builds the kernels' primitives: the warm-up, inside train_s
                clock["first_step"] = clock["last_step"]
            if event.step % max(recipe.total_steps // 10, 1) < recipe.log_every_steps:  # long runs show they live
                print(f"seed {recipe.seed}: step {event.step}/{recipe.total_steps}, loss {event.total_loss:.3f}",
                      file=sys.stderr, flush=True)
        elif isinstance(event, Tested):
            clock["tested"] = time.perf_counter()

    began = time.perf_counter()
    result = train(recipe, model_dir, data, device, report=progress, tensorboard=False, execution=execution)
    ended = time.perf_counter()
    run = {"seed": recipe.seed, "test_accuracy": result["test_accuracy"],
           "train_s": round(result["train_seconds"], 3), "compile_s": round(result["compile_seconds"], 2),
           # model, optimizer and model directory; validation and test; calibration and checkpoint
           "setup_s": round(clock["started"] - began, 3), "first_step_s": round(clock["first_step"] - clock["started"], 3),
           "evaluate_s": round(clock["tested"] - clock["last_step"], 3),
           "checkpoint_s": round(ended - clock["tested"], 3)}
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
    parser.add_argument("--baseline", action="store_true",
                        help="also run the public one-epoch recipe (baselines/train_mnist_fast.py) for each seed")
    parser.add_argument("--baseline-images", type=int, default=60_000,
                        help="the baseline's training images (default all 60,000, as published; fewer: a quick check)")
    args = parser.parse_args()
    imports_s = time.perf_counter() - STARTED
    resolve_device(args.device)
    if args.baseline and (args.device != "cpu" or args.dataset != "mnist"):
        parser.error("--baseline is the CPU recipe on MNIST: it needs --device cpu and --dataset mnist")
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
    runs, baseline_runs = [], []
    baseline = runpy.run_path(str(BASELINE)) if args.baseline else None
    if baseline:  # all 60,000 training images, as the recipe takes them
        everything = data.without_validation()
        baseline_images = everything.train_images[:args.baseline_images]
        baseline_labels = everything.train_labels[:args.baseline_images]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if baseline:
            baseline_runs.append(baseline["one_run"](baseline_images, baseline_labels, data.test_images,
                                                     data.test_labels, seed))
            print(f"seed {seed}: baseline {json.dumps(baseline_runs[-1])}", file=sys.stderr, flush=True)
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
        "imports_s": round(imports_s, 2), "data_load_s": round(load_s, 2), "runs": runs, **describe(args.device),
    }
    if baseline_runs:
        baseline_median = statistics.median(r["train_s"] for r in baseline_runs)
        summary["baseline"] = {
            "recipe": "tuomaso/train_mnist_fast 8_Final (benchmarks/baselines/train_mnist_fast.py)",
            "train_images": len(baseline_labels),
            "mean_test_accuracy": statistics.mean(r["test_accuracy"] for r in baseline_runs),
            "min_test_accuracy": min(r["test_accuracy"] for r in baseline_runs),
            "median_train_s": baseline_median, "runs": baseline_runs}
        summary["speedup_vs_baseline"] = round(baseline_median / summary["median_train_s"], 2)
    if args.tta:
        summary["mean_test_accuracy_tta"] = statistics.mean(r["test_accuracy_tta"] for r in runs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
