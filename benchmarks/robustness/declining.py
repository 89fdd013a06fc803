"""How well does a model decline what is not a digit, without losing digits? Prints one JSON object.

Every picture goes through `lenet predict FILE`'s path (lenet.predict.predict_bytes on the encoded
file's bytes), so the verdicts "no ink" and "several digits", given before the network runs, count
as declines too, and so does a picture it refuses with an error ("refused": only lines across it, say);
an answer needs the digit gate's probability and the calibrated confidence both to
reach the threshold (lenet.decline).

Digits: the first N MNIST *test* digits (never trained on, by the classifier or by the gate), rendered
as camera and scanner pictures with every degradation mixed at random (predict_robustness.py's "mixed"
set), and the same digits as arrays (one .npy file). Non-digits (lenet.negatives), N per family: the
"training" family is drawn by the generator the gate was trained on, but from seeds it never saw
(gate training used 0 and 1; here SEED + 100), so it measures how the gate generalises to new marks of
known kinds; the "held-out" family is generated differently (other fonts, other shapes, other scribbles,
photo crops instead of textures) and measures marks of kinds the gate never saw the like of. Pictures
are kept whole, as a user's would be, even those the reader keeps only a fragment of (negative_inputs
would skip them): a fragment that looks like a 1 and is answered counts against the model.

Beside lenet's rule, two others judge the same pictures, from the same network outputs:
- confidence_only: the calibrated confidence alone (no gate), its threshold chosen on the first 5000
  validation digits to answer as many of them as lenet's rule is designed to (lenet.decline's
  DIGITS_ANSWERED, 99.5%): what the gate adds over thresholding the classifier;
- no_decline: threshold 0, as lenet answered before it declined.

Usage: LENET_DATA_DIR=... python benchmarks/robustness/declining.py --model DIR_OR_ONNX
       [--digits 2000] [--negatives 2000] [--seed 0] [--min-confidence P]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

# predict_robustness.py sits beside this script: found by `python declining.py`, whose directory Python
# puts first on sys.path, but not when the script is run by path from elsewhere (runpy, the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_robustness import effects_for, render_digit  # noqa: E402

from lenet.data import load_dataset  # noqa: E402
from lenet.datasets import reads_digits  # noqa: E402
from lenet.decline import (DIGIT, DIGITS_ANSWERED, NO_INK, NOT_A_DIGIT, SEVERAL_DIGITS, UNSURE,  # noqa: E402
                           check_min_confidence, declined, default_min_confidence)
from lenet.errors import LenetError  # noqa: E402
from lenet.inference import Scores, open_model  # noqa: E402
from lenet.negatives import FAMILIES, KINDS, negative_pictures  # noqa: E402
from lenet.predict import predict_bytes  # noqa: E402
from lenet.results import Prediction  # noqa: E402
from lenet.testing.machine import describe  # noqa: E402

# A picture `lenet predict` refuses with an error (say, only lines across it, no mark): not answered either.
REFUSED = "refused"
VERDICTS = (DIGIT, NOT_A_DIGIT, UNSURE, NO_INK, SEVERAL_DIGITS, REFUSED)  # those a model of digits gives
VALIDATION_DIGITS = 5000
NEGATIVE_SEED_OFFSET = 100  # the gate was trained on the training family's seeds 0 and 1
DIGIT_PICTURE_STREAM = 0x6469_6769  # the digits' own random stream, apart from the negatives'


class Judged:
    """What lenet said of N inputs (one Prediction each, in order), kept as arrays so that other
    thresholds can judge the same network outputs: the verdicts, the closest class (-1 where the
    network never saw the input), and the Scores of those it saw (REACHED marks them)."""

    def __init__(self, predictions: list, classes: int, gated: bool):
        self.verdicts = np.array([p.verdict for p in predictions], dtype=object)
        self.reached = np.array([p.probabilities is not None for p in predictions], dtype=bool)
        self.closest = np.array([p.closest.class_ if p.closest else -1 for p in predictions], dtype=np.int64)
        seen = [p for p in predictions if p.probabilities is not None]
        probabilities = np.array([p.probabilities for p in seen], dtype=np.float64).reshape(len(seen), classes)
        self.scores = Scores(probabilities, np.array([p.digit_probability for p in seen], dtype=np.float64)
                             if gated else None)

    def __len__(self) -> int:
        return len(self.verdicts)

    def answered(self, min_confidence: float, gate: bool = True) -> np.ndarray:
        """Which inputs lenet.decline's rule answers at MIN_CONFIDENCE (with the gate's probability, or
        by the confidence alone): bool (N,). Those the network never saw (no ink, several digits, refused)
        never are."""
        scores = self.scores if gate else Scores(self.scores.probabilities)
        answered = np.zeros(len(self), dtype=bool)
        answered[self.reached] = ~declined(scores, min_confidence)
        return answered

    def verdict_counts(self) -> dict[str, int]:
        counts = Counter(self.verdicts.tolist())
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    def confidence(self) -> np.ndarray:
        """The calibrated confidence of each input, NaN where the network never saw it."""
        values = np.full(len(self), np.nan)
        values[self.reached] = self.scores.probabilities.max(1)
        return values


def share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def accuracy_among(correct: np.ndarray, answered: np.ndarray) -> float | None:
    return float(correct[answered].mean()) if answered.any() else None


def percentiles(values: np.ndarray) -> dict:
    """The median and 90th percentile of VALUES (None when empty)."""
    if len(values) == 0:
        return {"median": None, "p90": None}
    return {"median": round(float(np.median(values)), 4), "p90": round(float(np.quantile(values, 0.9)), 4)}


def judge_pictures(model, payloads: list[tuple[bytes, str]], min_confidence: float, stem: str) -> Judged:
    """Each picture file of PAYLOADS ((bytes, format)) predicted as `lenet predict` predicts a file."""
    predictions = []
    for i, (payload, fmt) in enumerate(payloads):
        try:
            predictions.extend(predict_bytes(model, payload, f"{stem}-{i}.{fmt}", 1, min_confidence))
        except LenetError:
            predictions.append(Prediction.unread(REFUSED))
    return Judged(predictions, model.num_classes, model.has_gate)


def digit_pictures(model, images: np.ndarray, labels: np.ndarray, min_confidence: float, seed: int) -> tuple[dict, Judged]:
    """IMAGES (uint8 test digits, LABELS their classes) as pictures with the "mixed" degradations."""
    rng = np.random.default_rng([seed, DIGIT_PICTURE_STREAM])
    payloads = [render_digit(digit, rng, effects_for("mixed", rng)) for digit in images]
    judged = judge_pictures(model, payloads, min_confidence, "digit")
    answered = judged.verdicts == DIGIT
    correct = judged.closest == labels
    return {"pictures": len(judged), "answered": share(answered), "accuracy_answered": accuracy_among(correct, answered),
            "accuracy_overall": share(answered & correct), "verdicts": judged.verdict_counts()}, judged


def digit_arrays(model, images: np.ndarray, labels: np.ndarray, min_confidence: float) -> tuple[dict, Judged]:
    """IMAGES as one .npy file of uint8 arrays, predicted as `lenet predict digits.npy` predicts it."""
    buffer = io.BytesIO()
    np.save(buffer, images)
    judged = Judged(predict_bytes(model, buffer.getvalue(), "digits.npy", 1, min_confidence), model.num_classes,
                    model.has_gate)
    answered = judged.verdicts == DIGIT
    correct = judged.closest == labels
    return {"arrays": len(judged), "answered": share(answered), "accuracy_answered": accuracy_among(correct, answered),
            "accuracy_overall": share(answered & correct)}, judged


def non_digits(model, family: str, count: int, seed: int, min_confidence: float) -> tuple[dict, Judged]:
    """COUNT non-digit pictures of FAMILY drawn from SEED: what is declined, by kind and by verdict."""
    pictures = negative_pictures(count, family, seed)
    kinds = np.array([kind for _, kind in pictures])
    # negative_pictures gives a kind, not a format: the file name only names it in messages.
    judged = judge_pictures(model, [(payload, "jpeg" if payload[:2] == b"\xff\xd8" else "png")
                                    for payload, _ in pictures], min_confidence, family)
    answered = judged.verdicts == DIGIT
    wrongly = judged.confidence()[answered]
    result = {"pictures": len(judged), "seed": seed, "declined": share(~answered),
              "declined_by_kind": {kind: share(~answered[kinds == kind]) for kind in KINDS[family]},
              "pictures_by_kind": {kind: int((kinds == kind).sum()) for kind in KINDS[family]},
              "verdicts": judged.verdict_counts(),
              "wrongly_answered_confidence": percentiles(wrongly)}
    if model.has_gate:
        digit_probability = np.full(len(judged), np.nan)
        digit_probability[judged.reached] = judged.scores.digit_probabilities
        result["wrongly_answered_digit_probability"] = percentiles(digit_probability[answered])
    return result, judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model directory or an exported .onnx file, of MNIST digits")
    parser.add_argument("--digits", type=int, default=2000, help="MNIST test digits, as pictures and as arrays (default 2000)")
    parser.add_argument("--negatives", type=int, default=2000, help="non-digit pictures per family (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="draws the digit pictures; the negatives use SEED + 100")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="the threshold for answering (default: the model's own)")
    args = parser.parse_args()
    if not 1 <= args.digits <= 10000 or args.negatives < 1 or args.seed < 0:
        parser.error("--digits must be from 1 to 10000, --negatives at least 1, --seed at least 0")
    started = time.perf_counter()
    model = open_model(args.model)
    if not reads_digits(model.info.dataset):
        parser.error(f"{args.model} is a model of {model.info.dataset}, not of digits")
    threshold = model.min_confidence if args.min_confidence is None else check_min_confidence(args.min_confidence)
    data = load_dataset("mnist")
    images, labels = data.test_images[:args.digits].numpy(), data.test_labels[:args.digits].numpy()

    # The confidence-only threshold, chosen as lenet's default is, on validation digits, without the gate.
    validation = model.scores(data.val_images[:VALIDATION_DIGITS].numpy())
    confidence_threshold = default_min_confidence(validation.probabilities.max(1))

    def progress(what: str) -> None:
        print(f"{what} done at {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    pictures, pictures_judged = digit_pictures(model, images, labels, threshold, args.seed)
    progress(f"{args.digits} digit pictures")
    arrays, arrays_judged = digit_arrays(model, images, labels, threshold)
    families, families_judged = {}, {}
    for family in FAMILIES:
        families[family], families_judged[family] = non_digits(model, family, args.negatives,
                                                               args.seed + NEGATIVE_SEED_OFFSET, threshold)
        progress(f"{args.negatives} non-digits of the {family} family")
    # The arrays re-judged by the rule must give the verdicts predict gave: the other rules below are then
    # judged on the very outputs the user path saw.
    for judged in (pictures_judged, arrays_judged, *families_judged.values()):
        assert np.array_equal(judged.answered(threshold), judged.verdicts == DIGIT), "re-judging disagrees with predict"

    picture_correct = pictures_judged.closest == labels
    only = pictures_judged.answered(confidence_threshold, gate=False)
    result = {
        "question": "how well does a model decline what is not a digit, without losing digits?",
        "model": {"source": args.model, "network": model.info.model, "recipe": model.info.recipe,
                  "step": model.info.step, "temperature": model.temperature, "own_min_confidence": model.min_confidence,
                  "has_gate": model.has_gate},
        "min_confidence": threshold,
        "seed": args.seed,
        "validation_digits_answered": share(~declined(validation, threshold)),
        "digit_pictures": pictures,
        "digit_arrays": arrays,
        "non_digits": families,
        "confidence_only": {
            "min_confidence": confidence_threshold,
            "validation_digits_answered": share(validation.probabilities.max(1) >= confidence_threshold),
            "designed_to_answer": DIGITS_ANSWERED,
            "digit_pictures_answered": share(only),
            "digit_pictures_accuracy_answered": accuracy_among(picture_correct, only),
            "digit_arrays_answered": share(arrays_judged.answered(confidence_threshold, gate=False)),
            "non_digits_declined": {family: share(~judged.answered(confidence_threshold, gate=False))
                                    for family, judged in families_judged.items()},
        },
        "no_decline": {
            "digit_pictures_answered": share(pictures_judged.answered(0.0)),
            "digit_pictures_accuracy_overall": share(pictures_judged.answered(0.0) & picture_correct),
            "non_digits_answered": {family: share(judged.answered(0.0)) for family, judged in families_judged.items()},
        },
        "machine": describe(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
