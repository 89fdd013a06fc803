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


def test_generated_pictures_are_read_with_bounded_inputs_and_no_traceback():
    # The work class (zig-zags beside hairlines, speckled pages, strips, dot fields, mutated PNGs, ...)
    # read by the number reader and the single-picture path. Its seconds are benchmarks/fuzzing/fuzz.py's
    # to report: a test on a shared machine asserts no timing.
    from lenet.pictures.numbers import MAX_NUMBER_INPUTS
    from lenet.testing.fuzz_work import fuzz_work
    figures = fuzz_work(40, seed=12345)
    assert figures["cases"] == 40 and figures["readings"] == 80
    assert (figures["tracebacks"], figures["wrong_answers"], figures["multi_line_refusals"]) == (0, 0, 0), \
        figures["examples"]
    assert 0 < figures["max_inputs"] <= MAX_NUMBER_INPUTS
