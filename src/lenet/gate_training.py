"""Train the digit gate (lenet.gate) and write it into the package, with its calibration and provenance.

    LENET_DATA_DIR=... python -m lenet.gate_training [--out src/lenet/digit_gate.safetensors]

Digits: MNIST's training split, both as the arrays and as pictures (each digit photographed by
lenet.negatives.photograph exactly as the non-digits are, then read back by lenet.pictures as `lenet
predict` reads a file), so that the gate cannot tell digits from non-digits by the traces of the
picture path or of a degradation. (A first gate whose digits were photographed more simply than its
non-digits learned that a thickened stroke, a tint or a lighting gradient means "not a digit".) Non-digits: lenet.negatives' "training" family, read the same way. The calibration (Platt
scaling) and every figure printed come from validation data: MNIST's validation split, its digits as
pictures, and non-digits of the training family drawn with another seed. The held-out family and
MNIST's test split are left for benchmarks/robustness/declining.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .augment import distort
from .data import load_dataset, to_float
from .errors import LenetError
from .gate import GATE_FILE, DigitGate, GateCalibration, save_gate
from .negatives import photograph
from .pictures.inputs import image_to_input

# The size at which a digit is drawn before it is photographed (its strokes changed, turned, scaled).
DRAWING_PX = 224


def digit_picture(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A uint8 28x28 MNIST digit as a picture file, photographed as lenet.negatives photographs every
    non-digit: the same canvases and degradations on both sides, so that only the marks' shapes differ."""
    mark = Image.fromarray(digit).resize((DRAWING_PX, DRAWING_PX), Image.Resampling.BICUBIC)
    return photograph(mark, rng)[0]


def digits_as_pictures(images: torch.Tensor, seed: int) -> np.ndarray:
    """Float (N, 28, 28) inputs of uint8 IMAGES made pictures (digit_picture) and read back; a picture
    that reads as no digit (rare: a faint digit under noise) is left out."""
    rng = np.random.default_rng(seed)
    inputs = []
    for digit in images.numpy():
        try:
            inputs.append(image_to_input(digit_picture(digit, rng), "digit"))
        except LenetError:
            continue
    return np.stack(inputs)


def train_gate(digits: torch.Tensor, non_digits: torch.Tensor, epochs: int, seed: int,
               batch_size: int = 256) -> DigitGate:
    """The gate trained on float (N, 1, 28, 28) DIGITS and NON_DIGITS, each class weighted equally. Half
    of every batch, digits and non-digits alike, is distorted (affine): slanted or shifted digits stay
    digits, and the resampling's blur says nothing about the class (distorting digits alone taught an
    earlier gate that sharp inputs are not digits)."""
    torch.manual_seed(seed)
    gate = DigitGate()
    inputs = torch.cat([digits, non_digits])
    targets = torch.cat([torch.ones(len(digits)), torch.zeros(len(non_digits))])
    weights = torch.cat([torch.full((len(digits),), 0.5 / len(digits)), torch.full((len(non_digits),), 0.5 / len(non_digits))])
    steps = epochs * len(inputs) // batch_size
    optimizer = torch.optim.Adam(gate.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    gate.train()
    for step in range(steps):
        # Balanced batches: each class drawn with its weight, whatever the counts.
        indices = torch.multinomial(weights, batch_size, replacement=True)
        batch, target = inputs[indices], targets[indices]
        half = torch.rand(batch_size) < 0.5
        batch[half] = distort(batch[half], "affine")
        loss = F.binary_cross_entropy_with_logits(gate(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 200 == 0:
            print(f"step {step}/{steps}: loss {loss.item():.4f}", file=sys.stderr, flush=True)
    return gate.eval()


def gate_logits(gate: DigitGate, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([gate(inputs[i:i + 1000]) for i in range(0, len(inputs), 1000)])


def fit_platt(logits: torch.Tensor, is_digit: torch.Tensor) -> GateCalibration:
    """SCALE and BIAS minimizing the log-loss of sigmoid(scale * logit + bias), the classes weighted equally."""
    scale, bias = torch.ones((), requires_grad=True), torch.zeros((), requires_grad=True)
    weight = torch.where(is_digit, 0.5 / is_digit.sum(), 0.5 / (~is_digit).sum())
    optimizer = torch.optim.LBFGS([scale, bias], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = (weight * F.binary_cross_entropy_with_logits(scale * logits + bias, is_digit.float(), reduction="none")).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return GateCalibration(float(scale.detach()), float(bias.detach()))


def _drawn_inputs(args: argparse.Namespace, data) -> dict[str, np.ndarray]:
    """The inputs made from drawn pictures: training digits and non-digits, and their validation
    counterparts (other digits, another seed); from ARGS.inputs_cache when it holds them."""
    from .negatives import negative_inputs
    sizes = {"digit_pictures": args.digit_pictures, "negatives": args.negatives,
             "validation_pictures": args.validation, "validation_negatives": args.validation}
    if args.inputs_cache and Path(args.inputs_cache).exists():
        with np.load(args.inputs_cache) as cached:
            if int(cached["seed"]) == args.seed and all(int(cached[f"{name}_asked"]) == size for name, size in sizes.items()):
                return {name: cached[name] for name in sizes}
    drawn = {"digit_pictures": digits_as_pictures(data.train_images[:args.digit_pictures], args.seed),
             "negatives": negative_inputs(args.negatives, "training", args.seed)[0],
             "validation_pictures": digits_as_pictures(data.val_images[:args.validation], args.seed + 1),
             "validation_negatives": negative_inputs(args.validation, "training", args.seed + 1)[0]}
    if args.inputs_cache:
        np.savez(args.inputs_cache, seed=np.array(args.seed), **drawn,
                 **{f"{name}_asked": np.array(size) for name, size in sizes.items()})
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet.gate_training", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(GATE_FILE))
    parser.add_argument("--digits", type=int, default=0, help="training digits to use (default: all)")
    parser.add_argument("--digit-pictures", type=int, default=20000, help="training digits also made pictures")
    parser.add_argument("--negatives", type=int, default=40000, help="non-digits to train on")
    parser.add_argument("--validation", type=int, default=5000, help="of each kind of validation input")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs-cache", help="an .npz file keeping the inputs drawn (they take most of the "
                                               "time): read when it exists, written when it does not")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_dataset("mnist")
    digits = data.train_images[:args.digits or None]
    drawn = _drawn_inputs(args, data)
    print(f"inputs made in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    as_batch = lambda name: torch.from_numpy(drawn[name]).reshape(-1, 1, 28, 28)  # noqa: E731
    train_digits = torch.cat([to_float(digits), as_batch("digit_pictures")])
    gate = train_gate(train_digits, as_batch("negatives"), args.epochs, args.seed)

    val_arrays = to_float(data.val_images[:args.validation])
    val_pictures, val_negatives = as_batch("validation_pictures"), as_batch("validation_negatives")
    logits = [gate_logits(gate, x) for x in (val_arrays, val_pictures, val_negatives)]
    is_digit = torch.cat([torch.ones(len(logits[0]) + len(logits[1]), dtype=torch.bool),
                          torch.zeros(len(logits[2]), dtype=torch.bool)])
    calibration = fit_platt(torch.cat(logits), is_digit)
    probability = [torch.sigmoid(calibration.scale * x + calibration.bias) for x in logits]
    figures = {"validation_digit_arrays_at_least_0.5": float((probability[0] >= 0.5).double().mean()),
               "validation_digit_pictures_at_least_0.5": float((probability[1] >= 0.5).double().mean()),
               "validation_non_digits_below_0.5": float((probability[2] < 0.5).double().mean())}
    provenance = {"made_by": "python -m lenet.gate_training " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "digits": f"MNIST training split ({len(digits)}) + {args.digit_pictures} as pictures",
                  "non_digits": f"lenet.negatives training family, {args.negatives}, seed {args.seed}",
                  "epochs": str(args.epochs), "seed": str(args.seed), "validation": json.dumps(figures)}
    save_gate(gate, calibration, args.out, provenance)
    print(json.dumps({"out": args.out, "scale": calibration.scale, "bias": calibration.bias, **figures,
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
