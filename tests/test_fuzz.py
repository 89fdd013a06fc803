"""Seeded, bounded fuzzing of the files lenet reads (lenet.testing.fuzz_cases; larger counts:
benchmarks/fuzzing/fuzz.py)."""

import numpy as np
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


@pytest.mark.parametrize("case", [136, 175, 328, 516, 621])
def test_the_work_fuzzers_nan_ink_pictures_are_no_ink_not_a_traceback(case):
    # Found by `fuzz.py --kind work` (seed 0): strokes no darker than the paper made the ink level equal
    # its floor, and the ink NaN (ValueError: cannot convert float NaN to integer) in the digit path.
    from lenet.errors import LenetError
    from lenet.pictures.inputs import image_to_input
    from lenet.testing.fuzz_work import work_case
    try:
        image = image_to_input(work_case(0, case).payload, "case")
    except LenetError as error:
        assert "\n" not in str(error)
    else:
        assert image.shape == (28, 28) and np.isfinite(image).all()
