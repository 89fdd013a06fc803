"""The rule that decides whether lenet answers (lenet.decline), and how declined answers read."""

import json

import numpy as np
import pytest

from lenet.decline import (DIGITS_ANSWERED, MAX_DEFAULT, MIN_DEFAULT, check_min_confidence, default_min_confidence,
                           verdict)
from lenet.errors import LenetError
from lenet.results import DigitReading, NumberReading, Prediction

DIGITS = tuple("0123456789")


def test_an_answer_needs_both_probabilities_to_reach_the_threshold():
    assert verdict(0.9, 0.95, 0.5, of_digits=True) == "digit"
    assert verdict(0.9, 0.2, 0.5, of_digits=True) == "not a digit"
    assert verdict(0.4, 0.99, 0.5, of_digits=True) == "unsure"
    assert verdict(0.4, None, 0.5, of_digits=False) == "unsure"
    assert verdict(0.9, None, 0.5, of_digits=False) == "item"
    assert verdict(0.1, 0.0, 0.0, of_digits=True) == "digit"  # 0 answers everything


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "0.5", True, None])
def test_a_threshold_outside_0_to_1_is_one_line_naming_the_option(bad):
    with pytest.raises(LenetError, match=r"^--min-confidence must be a number from 0 to 1"):
        check_min_confidence(bad)


def test_the_default_threshold_answers_the_stated_share_of_validation_digits():
    confidence = np.random.default_rng(0).uniform(0.3, 1.0, 10000)
    threshold = default_min_confidence(confidence)
    assert DIGITS_ANSWERED - 0.001 <= (confidence >= threshold).mean() <= DIGITS_ANSWERED + 0.001
    assert default_min_confidence(np.ones(100)) == MAX_DEFAULT
    assert default_min_confidence(np.full(100, 0.01)) == MIN_DEFAULT


def test_a_declined_prediction_keeps_its_probabilities_and_closest_class_but_names_no_class():
    row = np.array([0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.61, 0.3], np.float32)
    declined = Prediction.from_probabilities(row, DIGITS, 3, digit_probability=0.1, min_confidence=0.5)
    answer = json.loads(json.dumps(declined.to_json()))
    assert answer["class"] is None and answer["label"] is None and answer["verdict"] == "not a digit"
    assert answer["top_k"][0] == {"class": 8, "label": "8", "probability": 0.61}
    assert answer["confidence"] == 0.61 and answer["digit_probability"] == 0.1 and len(answer["probabilities"]) == 10
    answered = Prediction.from_probabilities(row, DIGITS, 3, digit_probability=0.9, min_confidence=0.5)
    assert (answered.class_, answered.label, answered.verdict) == (8, "8", "digit")
    blank = Prediction.unread("no ink", "blank.png").to_json()
    assert blank == {"file": "blank.png", "index": None, "class": None, "label": None, "verdict": "no ink",
                     "confidence": None, "digit_probability": None, "probabilities": None, "top_k": []}


def test_a_number_with_a_declined_position_has_no_number_but_shows_where_it_doubts():
    def digit(label: int, digit_probability: float) -> DigitReading:
        row = np.full(10, 0.01, np.float32)
        row[label] = 0.91
        return DigitReading(Prediction.from_probabilities(row, DIGITS, 3, digit_probability=digit_probability,
                                                          min_confidence=0.5), (0, 0, 1, 1))
    reading = NumberReading.from_digits((digit(4, 0.9), digit(8, 0.05), digit(7, 0.99)), "meter.png")
    assert (reading.number, reading.reading, reading.verdict) == (None, "4?7", "declined")
    assert [d["verdict"] for d in reading.to_json()["digits"]] == ["digit", "not a digit", "digit"]
    whole = NumberReading.from_digits((digit(4, 0.9), digit(7, 0.99)))
    assert (whole.number, whole.reading, whole.verdict) == ("47", "47", "number")
