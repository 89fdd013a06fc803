"""Seeded, bounded fuzzing of the files lenet reads (benchmarks/fuzz_cases.py; larger counts: benchmarks/fuzz.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from fuzz_cases import CLASSES  # noqa: E402

# A few seconds per class on 2 CPU cores; the checkpoint class loads and resumes a model each case.
CASES = {"images": 400, "idx": 1000, "checkpoints": 40}


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_fuzzing_finds_no_traceback_hang_or_wrong_answer(kind):
    figures = CLASSES[kind](CASES[kind], seed=12345)
    assert figures["cases"] == CASES[kind]
    assert (figures["tracebacks"], figures["hangs"], figures["wrong_answers"]) == (0, 0, 0), figures["examples"]
