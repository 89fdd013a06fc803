"""Data-parallel scaling and parallel seeds on this machine; prints one JSON object.

For each rank count R in --ranks: `torchrun --standalone --nproc-per-node R -m lenet train` of
--steps steps of the recipe (on the CPU each rank gets cores / R threads, so ranks x threads =
cores; on GPUs one rank per GPU), its training images/s (lenet's own train_seconds: steps only)
and wall seconds (process start, data loading and rendezvous included); beside it one plain
`lenet train` process. Then --seeds independent runs side by side (`lenet train --seeds ...
--parallel P`): their combined images/s over the wall time.

Usage: LENET_DATA_DIR=... python benchmarks/speed/scaling.py [--recipe tutorial-cnn] [--steps 300]
       [--ranks 1,2] [--seeds 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lenet import get_recipe
from lenet.testing.machine import describe


def _run(command: list[str], threads: int | None) -> tuple[dict | None, float, str]:
    """(the --json result, wall seconds, stderr) of one command."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"scaling.py: {' '.join(command[:8])} ... failed:\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else None), wall, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="tutorial-cnn")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts (default 1,2)")
    parser.add_argument("--seeds", type=int, default=2, help="independent runs side by side (default 2; 0: none)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    recipe = get_recipe(args.recipe)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    train_options = ["--recipe", args.recipe, "--steps", str(args.steps), "--no-tensorboard", "--json",
                     "--device", args.device, "--eval-every-steps", str(10 ** 9),
                     "--checkpoint-every-steps", str(args.steps)]
    images = args.steps * recipe.batch_size
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        result, wall, _ = _run([sys.executable, "-m", "lenet", "train", "--model-dir", f"{tmp}/plain",
                                *train_options], None)
        results.append({"launch": "lenet train", "ranks": 1, "threads_per_rank": cores,
                        "train_images_per_s": images / result["train_seconds"], "wall_s": wall})
        for ranks in map(int, args.ranks.split(",")):
            threads = max(cores // ranks, 1) if args.device == "cpu" else None
            result, wall, _ = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc-per-node", str(ranks), "-m", "lenet", "train",
                                    "--model-dir", f"{tmp}/ranks-{ranks}", *train_options], threads)
            results.append({"launch": "torchrun", "ranks": ranks, "threads_per_rank": threads,
                            "train_images_per_s": images / result["train_seconds"], "wall_s": wall})
        seeds = None
        if args.seeds:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lenet", "train", "--seeds", f"0-{args.seeds - 1}",
                            "--parallel", str(args.seeds), "--model-dir", str(Path(tmp) / "seed-{seed}"),
                            *[o for o in train_options if o != "--json"]], check=True, capture_output=True)
            wall = time.perf_counter() - started
            seeds = {"runs": args.seeds, "wall_s": wall, "images_per_s_all_runs": args.seeds * images / wall}
    print(json.dumps({"benchmark": "scaling", "recipe": args.recipe, "steps": args.steps,
                      "global_batch": recipe.batch_size, "cores": cores, "data_parallel": results,
                      "parallel_seeds": seeds, "machine": describe(args.device)}))


if __name__ == "__main__":
    main()
