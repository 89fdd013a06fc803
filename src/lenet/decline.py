"""Whether lenet answers, and why not: the verdicts, and the one rule that gives them.

An answer needs two probabilities to reach the threshold MIN_CONFIDENCE: that the input is a digit at
all (the digit gate's, see lenet.gate; models of other data sets have no gate) and that the class named
is the right one (the calibrated confidence, see lenet.calibration). Below the first, the verdict is
"not a digit"; below the second, "unsure" (a digit, but which one is not clear enough). A threshold of
0 answers everything, as lenet did before it declined. Pictures without ink and pictures holding
several digits are told apart before the network runs (lenet.pictures).

A model's default threshold is chosen on its validation split when it is checkpointed: the highest at
which its calibrated confidence still answers DIGITS_ANSWERED of the validation digits, within
[MIN_DEFAULT, MAX_DEFAULT]. It is chosen on the classifier alone, so that it belongs to the checkpoint:
the gate ships with lenet and may be retrained, and its probability is calibrated on its own (lenet.gate).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import LenetError

DIGIT = "digit"                  # answered, by a model of digits
ITEM = "item"                    # answered, by a model of another data set (clothes, an IDX set)
NOT_A_DIGIT = "not a digit"
UNSURE = "unsure"
NO_INK = "no ink"
SEVERAL_DIGITS = "several digits"
ANSWERED = (DIGIT, ITEM)

# The threshold of a model that records none (a checkpoint or export made before lenet declined):
# answer only what is more likely right than not.
FALLBACK_MIN_CONFIDENCE = 0.5
DIGITS_ANSWERED = 0.995
MIN_DEFAULT, MAX_DEFAULT = 0.05, 0.9


def verdict(confidence: float, digit_probability: float | None, min_confidence: float, of_digits: bool) -> str:
    """The verdict on an input the network saw (see the module's docstring)."""
    if digit_probability is not None and digit_probability < min_confidence:
        return NOT_A_DIGIT
    if confidence < min_confidence:
        return UNSURE
    return DIGIT if of_digits else ITEM


def declined(scores, min_confidence: float) -> np.ndarray:
    """Which of SCORES' inputs (an inference.Scores) the rule declines at MIN_CONFIDENCE: bool (N,)."""
    below = scores.probabilities.max(1) < min_confidence
    if scores.digit_probabilities is not None:
        below |= scores.digit_probabilities < min_confidence
    return below


def check_min_confidence(value: object, name: str = "--min-confidence") -> float:
    """VALUE as a threshold: a number from 0 to 1, else a one-line error naming NAME."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0 \
            or not math.isfinite(value):
        raise LenetError(f"{name} must be a number from 0 to 1, got {value!r:.30}")
    return float(value)


def default_min_confidence(confidence: np.ndarray) -> float:
    """The threshold at which DIGITS_ANSWERED of a validation split's digits, whose calibrated
    CONFIDENCE (N,) is given, are answered: its (1 - DIGITS_ANSWERED) quantile."""
    confidence = np.asarray(confidence, np.float64)
    if len(confidence) == 0:
        return MIN_DEFAULT
    chosen = float(np.quantile(confidence, 1.0 - DIGITS_ANSWERED, method="lower"))
    return min(max(chosen, MIN_DEFAULT), MAX_DEFAULT)
