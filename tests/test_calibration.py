"""Temperature scaling and the calibration measures (lenet.calibration)."""

import numpy as np
import torch

from lenet.calibration import (CALIBRATION_BINS, expected_calibration_error, fit_temperature, negative_log_likelihood,
                               reliability_bins)


def _sampled(logits: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Labels drawn from softmax(LOGITS): a model exactly calibrated at temperature 1."""
    return torch.multinomial(torch.softmax(logits, 1), 1, generator=torch.Generator().manual_seed(seed)).squeeze(1)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    logits = torch.randn(20000, 10, generator=torch.Generator().manual_seed(1)) * 3
    labels = _sampled(logits)
    # The network says LOGITS * 2.5: overconfident by a factor the fit must undo.
    assert abs(fit_temperature(logits * 2.5, labels) - 2.5) < 0.1
    assert abs(fit_temperature(logits, labels) - 1.0) < 0.05


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_model():
    logits = torch.randn(20000, 10, generator=torch.Generator().manual_seed(2)) * 3
    labels = _sampled(logits).numpy()
    overconfident = torch.softmax(logits * 3, 1).numpy()
    temperature = fit_temperature(logits * 3, torch.from_numpy(labels))
    calibrated = torch.softmax(logits * 3 / temperature, 1).numpy()
    assert expected_calibration_error(calibrated, labels) < 0.02 < expected_calibration_error(overconfident, labels)
    assert negative_log_likelihood(calibrated, labels) < negative_log_likelihood(overconfident, labels)
    assert (calibrated.argmax(1) == overconfident.argmax(1)).all()  # the classes are unchanged


def test_reliability_bins_count_every_answer_once_and_the_error_is_their_weighted_gap():
    probabilities = np.array([[0.95, 0.05], [0.99, 0.01], [0.6, 0.4], [0.3, 0.7], [1.0, 0.0]])
    labels = np.array([0, 1, 0, 1, 0])
    bins = reliability_bins(probabilities, labels)
    assert len(bins) == CALIBRATION_BINS and sum(b.count for b in bins) == 5
    last = bins[-1]  # 0.95, 0.99 and 1.0 (the last bin holds 1.0): two of three right
    assert last.count == 3 and abs(last.accuracy - 2 / 3) < 1e-12 and abs(last.confidence - (0.95 + 0.99 + 1.0) / 3) < 1e-12
    expected = sum(b.count * abs(b.accuracy - b.confidence) for b in bins) / 5
    assert abs(expected_calibration_error(probabilities, labels) - expected) < 1e-12
    assert negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])) < 105  # log(0) is not infinite
