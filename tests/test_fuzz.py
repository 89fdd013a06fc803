"""Seeded, bounded fuzzing of the files lenet reads (lenet.testing.fuzz_cases; larger counts:
benchmarks/fuzzing/fuzz.py)."""

import pytest

from lenet.testing.fuzz_cases import CLASSES

# A few seconds per class on 2 CPU cores; the checkpoint class loads and resumes a model each case.
CASES = {"images": 400, "idx": 1000, "checkpoints": 40}


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_fuzzing_finds_no_traceback_hang_or_wrong_answer(kind):
    figures = CLASSES[kind](CASES[kind], seed=12345)
    assert figures["cases"] == CASES[kind]
    assert (figures["tracebacks"], figures["hangs"], figures["wrong_answers"]) == (0, 0, 0), figures["examples"]
