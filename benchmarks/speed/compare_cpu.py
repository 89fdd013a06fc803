"""Side by side on this machine: lenet vs idiomatic PyTorch vs TensorFlow graph mode vs Keras fit.

Runs benchmarks/speed/throughput.py and the baselines in benchmarks/baselines/ as child processes, in
alternation for --rounds rounds (so that a noisy machine hurts them alike), and prints one JSON
object: each implementation's median train and inference images/s (lenet's also through its ONNX
export in onnxruntime), its test accuracy after the same number of steps, and lenet's ratio to each, with the CPU kind (family, model, vector flags) it ran on.

Usage: LENET_DATA_DIR=... python benchmarks/speed/compare_cpu.py [--steps 300] [--rounds 3] [--variants fp32,compile]
       [--infer-batch 1000] [--tf-python .venv-tf/bin/python]
TensorFlow runs from its own environment (`make bench-setup` creates .venv-tf); without it the
TensorFlow rows are left out and say so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from lenet.testing.machine import cpu_kind

BENCHMARKS = Path(__file__).resolve().parents[1]
# lenet's execution settings (benchmarks/speed/throughput.py options); bf16 pays only on CPUs with AMX or AVX512-BF16.
# The ONNX export is the same fp32 file whichever way the network was trained, so only fp32 times it.
VARIANTS = {"fp32": [], "compile": ["--compile", "--no-onnx"], "bf16": ["--precision", "bf16", "--no-onnx"],
            "bf16-compile": ["--precision", "bf16", "--compile", "--no-onnx"]}


def run(command: list[str]) -> dict:
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        reason = (completed.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"compare_cpu: {Path(command[1]).name} failed: {reason}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--infer-batch", type=int, default=1000, help="images per inference batch, for all")
    parser.add_argument("--tf-python", default=str(BENCHMARKS.parent / ".venv-tf" / "bin" / "python"))
    parser.add_argument("--variants", default="fp32,compile",
                        help=f"lenet settings to measure, comma-separated: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    shared_options = ["--steps", str(args.steps), "--infer-batch", str(args.infer_batch)]
    # The baselines first: when one refuses its options, it does so before lenet's runs take minutes.
    commands = {"pytorch-dataloader": [sys.executable, str(BENCHMARKS / "baselines" / "torch_dataloader.py"),
                                       *shared_options]}
    notes = []
    if Path(args.tf_python).exists():
        for mode in ("graph", "keras"):
            commands[f"tensorflow-{mode}"] = [args.tf_python, str(BENCHMARKS / "baselines" / "tf_tutorial_cnn.py"),
                                              "--mode", mode, *shared_options]
    else:
        notes.append(f"no TensorFlow environment at {args.tf_python}: run `make bench-setup`")
    for variant in args.variants.split(","):
        commands[f"lenet-{variant}"] = [sys.executable, str(BENCHMARKS / "speed" / "throughput.py"),
                                        *shared_options, *VARIANTS[variant]]
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for round_index in range(args.rounds):
        for name, command in commands.items():
            results[name].append(run(command))
            print(f"round {round_index + 1}: {name} {results[name][-1]['train_images_per_s']} train images/s",
                  file=sys.stderr, flush=True)
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "train_images_per_s": statistics.median(r["train_images_per_s"] for r in runs),
            "infer_images_per_s": statistics.median(r["infer_images_per_s"] for r in runs),
            "test_accuracy": statistics.median(r["test_accuracy"] for r in runs),
        }
        if runs[0].get("infer_onnx_images_per_s"):
            summary[name]["infer_onnx_images_per_s"] = statistics.median(r["infer_onnx_images_per_s"] for r in runs)
    # Each lenet variant's speed as a multiple of each baseline's.
    ratios = {}
    for ours in (name for name in summary if name.startswith("lenet-")):
        for theirs in (name for name in summary if not name.startswith("lenet-")):
            ratio = ratios[f"{ours} / {theirs}"] = {
                key: round(summary[ours][f"{key}_images_per_s"] / summary[theirs][f"{key}_images_per_s"], 2)
                for key in ("train", "infer")}
            if "infer_onnx_images_per_s" in summary[ours]:
                ratio["infer_onnx"] = round(summary[ours]["infer_onnx_images_per_s"]
                                            / summary[theirs]["infer_images_per_s"], 2)
    lenet_run = next(runs[0] for name, runs in results.items() if name.startswith("lenet-"))
    print(json.dumps({"model": "tutorial-cnn", "batch_size": 100, "infer_batch": args.infer_batch,
                      "steps": args.steps, "rounds": args.rounds,
                      "machine": {**cpu_kind(), "threads": lenet_run["threads"]},
                      "results": summary, "ratios": ratios, "notes": notes}))


if __name__ == "__main__":
    main()
