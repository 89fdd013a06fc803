"""Probabilities that mean what they say: temperature scaling, and how well calibrated a model is.

A network trained to low loss is usually overconfident: of the answers it gives with probability
0.99, fewer than 99% are right. Temperature scaling (Guo et al., 2017) divides the logits by one
number T, fitted at the end of training to minimize the negative log-likelihood of the validation
split; the class ranking, and so the accuracy, is unchanged. T travels in the checkpoint and in
exports, and every probability lenet shows is softmax(logits / T).

The expected calibration error (ECE) is the mean gap between how sure the answers were and how
often they were right, over 15 equal-width bins of the top probability, weighted by the share of
answers in each bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CALIBRATION_BINS = 15
# T is kept within these bounds: a network so over- or under-confident that its fitted T would lie
# outside is damaged, not miscalibrated.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T minimizing the negative log-likelihood of LABELS under softmax(LOGITS / T) (N, classes).

    One parameter, a smooth convex problem in log T: a few L-BFGS iterations find it."""
    logits, labels = logits.detach().float().cpu(), labels.detach().long().cpu()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.cross_entropy(logits / log_t.exp(), labels)
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    return min(max(temperature, MIN_TEMPERATURE), MAX_TEMPERATURE)


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: answers whose top probability lay in [LOW, HIGH)."""
    low: float
    high: float
    count: int
    confidence: float   # their mean top probability
    accuracy: float     # the share of them that were right


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> list[ReliabilityBin]:
    """PROBABILITIES (N, classes) against LABELS (N,) in BINS equal-width bins of the top probability
    (the last bin includes 1.0); empty bins have count 0."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    confidence = probabilities.max(1)
    right = probabilities.argmax(1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    result = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        result.append(ReliabilityBin(b / bins, (b + 1) / bins, count,
                                     float(confidence[inside].mean()) if count else 0.0,
                                     float(right[inside].mean()) if count else 0.0))
    return result


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """The mean |accuracy - confidence| over BINS bins of the top probability, weighted by their counts."""
    table = reliability_bins(probabilities, labels, bins)
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.accuracy - b.confidence) for b in table) / total if total else 0.0


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The mean -log of the probability given to the true class (the smallest float32 instead of 0)."""
    probabilities = np.asarray(probabilities, np.float64)
    true = probabilities[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.maximum(true, np.finfo(np.float32).tiny)).mean()) if len(labels) else 0.0
