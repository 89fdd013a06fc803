"""Where lenet's time goes in a training step and an inference pass, per phase and per operator;
prints one JSON object (TensorFlow's counterpart: baselines/tf_profile.py).

Training: the recipe's step as `lenet train` runs it (batch indexing and scaling, forward and loss,
backward, the L2 gradient and optimizer update, the weight average), each phase timed with the
clock over --steps steps after --warmup ones (CPU kernels run synchronously, so the clock is exact),
then the same steps under torch.profiler for the operators' own times. Inference: the evaluation
network over --infer-batch test images, --steps passes.

Usage: LENET_DATA_DIR=... python benchmarks/speed/profile_cpu.py [--recipe tutorial-cnn] [--steps 30]
       [--infer-batch 100] [--precision fp32|bf16] [--no-channels-last]
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lenet import get_recipe, load_dataset
from lenet.datasets import DATASET_NAMES
from lenet.augment import distort
from lenet.data import BatchOrder, to_float
from lenet.models import build_model, eval_mode, l2_weights
from lenet.training import WeightAverage, add_l2_gradient, build_optimizer, ema_decay_at
from lenet.testing.machine import describe

PHASES = ("data", "forward and loss", "backward", "L2 gradient and optimizer", "weight average")


def _operators(prof, runs: int, top: int = 20) -> dict[str, float]:
    """The TOP operators by their own (self) CPU time, in ms per run."""
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    return {e.key: round(e.self_cpu_time_total / runs / 1000, 3) for e in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="tutorial-cnn")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES, help="what to train on (default mnist)")
    parser.add_argument("--data-dir", help="the data set's four IDX files (see `lenet train --help`)")
    parser.add_argument("--infer-batch", type=int, default=100)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    recipe, data = get_recipe(args.recipe), load_dataset(args.dataset, args.data_dir)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    bf16 = args.precision == "bf16"
    torch.manual_seed(0)
    model = build_model(recipe.model, num_classes=len(data.classes)).to(memory_format=layout).train()
    optimizer = build_optimizer(recipe, model)
    average = WeightAverage(model) if recipe.ema_decay > 0 else None
    regularized = l2_weights(model)
    batches = BatchOrder(len(data.train_labels), recipe.batch_size, recipe.seed)
    phase_s = collections.Counter()

    def step(i: int, timed: bool) -> None:
        clock = time.perf_counter()

        def mark(phase: str) -> None:
            nonlocal clock
            if timed:
                now = time.perf_counter()
                phase_s[phase] += now - clock
                clock = now

        indices = batches.indices(i)
        inputs = distort(to_float(data.train_images[indices]), recipe.augment).contiguous(memory_format=layout)
        labels = data.train_labels[indices]
        mark("data")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels, reduction=recipe.loss_reduction,
                               label_smoothing=recipe.label_smoothing)
        mark("forward and loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        if recipe.l2_rate > 0:
            add_l2_gradient(regularized, recipe.l2_rate)
        optimizer.step()
        mark("L2 gradient and optimizer")
        if average:
            average.update(ema_decay_at(recipe.ema_decay, i))
        mark("weight average")

    for i in range(args.warmup):
        step(i, timed=False)
    for i in range(args.steps):
        step(args.warmup + i, timed=True)
    with profile(activities=[ProfilerActivity.CPU]) as training_profile:
        for i in range(args.steps):
            step(args.warmup + args.steps + i, timed=False)

    network = (average.model if average else model)
    inputs = to_float(data.test_images[:args.infer_batch]).contiguous(memory_format=layout)

    def infer() -> None:
        with torch.no_grad(), eval_mode(network), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            network(inputs)

    for _ in range(3):
        infer()
    started = time.perf_counter()
    for _ in range(args.steps):
        infer()
    infer_s = (time.perf_counter() - started) / args.steps
    with profile(activities=[ProfilerActivity.CPU]) as inference_profile:
        for _ in range(args.steps):
            infer()
    step_ms = sum(phase_s.values()) / args.steps * 1000
    print(json.dumps({
        "implementation": "lenet", "recipe": args.recipe, "model": recipe.model, "batch_size": recipe.batch_size,
        "precision": args.precision, "channels_last": args.channels_last,
        "train_step_ms": round(step_ms, 2), "train_images_per_s": round(recipe.batch_size / step_ms * 1000),
        "train_ms_per_phase": {p: round(phase_s[p] / args.steps * 1000, 3) for p in PHASES},
        "train_ms_per_operator": _operators(training_profile, args.steps),
        "infer_batch": args.infer_batch, "infer_pass_ms": round(infer_s * 1000, 2),
        "infer_images_per_s": round(args.infer_batch / infer_s),
        "infer_ms_per_operator": _operators(inference_profile, args.steps),
        "machine": describe()}))


if __name__ == "__main__":
    main()
