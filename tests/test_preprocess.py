import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet.errors import LenetError
from lenet.preprocess import array_to_inputs, image_to_input, normalize_digit, read_inputs


def draw_seven(size=(300, 300), box=(60, 40, 240, 260), ink=0, paper=255, mode="L"):
    """A thick hand-drawn-style '7' in BOX on a SIZE canvas."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    draw.line([(left, top), (right, top)], fill=ink, width=24)
    draw.line([(right, top), (left + (right - left) // 3, bottom)], fill=ink, width=24)
    return image


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_dark_ink_on_light_paper_becomes_white_on_black_mnist_form():
    digit = image_to_input(png_bytes(draw_seven()), "seven.png")
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.max() == pytest.approx(1.0, abs=0.05) and digit[0].max() == 0.0  # black border
    rows, cols = np.flatnonzero(digit.max(1) > 0.1), np.flatnonzero(digit.max(0) > 0.1)
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (19, 20, 21)  # longest side ~20 px
    ys, xs = np.indices(digit.shape)
    centre = ((ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum())
    assert centre == pytest.approx((13.5, 13.5), abs=0.75)


def test_inverted_colour_and_offcentre_images_normalize_alike():
    reference = image_to_input(png_bytes(draw_seven()), "a")
    inverted = image_to_input(png_bytes(draw_seven(ink=255, paper=0)), "b")
    shifted = image_to_input(png_bytes(draw_seven(size=(900, 500), box=(620, 210, 800, 430))), "c")
    coloured = image_to_input(png_bytes(draw_seven(ink=(200, 20, 20), paper=(250, 250, 235), mode="RGB")), "d")
    assert np.abs(inverted - reference).mean() < 0.01
    assert np.abs(shifted - reference).mean() < 0.03
    assert np.abs(coloured - reference).mean() < 0.05


def test_transparent_canvas_uses_opacity_as_ink():
    image = draw_seven(ink=(255, 255, 255, 255), paper=(0, 0, 0, 0), mode="RGBA")
    reference = image_to_input(png_bytes(draw_seven()), "a")
    assert np.abs(image_to_input(png_bytes(image), "t") - reference).mean() < 0.01


def test_aspect_ratio_is_kept():
    bar = Image.new("L", (100, 400), 255)
    ImageDraw.Draw(bar).rectangle((40, 50, 60, 350), fill=0)
    digit = image_to_input(png_bytes(bar), "one.png")
    rows, cols = np.flatnonzero(digit.max(1) > 0.5), np.flatnonzero(digit.max(0) > 0.5)
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 3


@pytest.mark.parametrize("payload, message", [
    (b"", "empty file"),
    (b"this is not a picture", "not a recognised image format"),
    (png_bytes(Image.new("L", (50, 50), 255)), "no ink"),
])
def test_bad_images_are_one_line_errors_naming_the_file(payload, message):
    with pytest.raises(LenetError, match=f"^bad.png: .*{message}"):
        image_to_input(payload, "bad.png")


def test_truncated_image_is_refused():
    payload = png_bytes(draw_seven())
    with pytest.raises(LenetError, match="bad.png: cannot decode"):
        image_to_input(payload[: len(payload) // 2], "bad.png")


def test_oversized_image_is_refused_before_decoding():
    with pytest.raises(LenetError, match="over the limit"):
        image_to_input(png_bytes(draw_seven()), "big.png", max_pixels=1000)


def test_arrays_are_checked_and_scaled():
    assert array_to_inputs(np.full((28, 28), 255, np.uint8), "a").max() == 1.0
    assert array_to_inputs(np.zeros((3, 784), np.float32), "a").shape == (3, 28, 28)
    for bad, message in [(np.zeros((27, 28)), "expected shape"), (np.full((28, 28), np.nan), "NaN"),
                         (np.full((28, 28), 2.0), r"\[0, 1\]"), (np.zeros((28, 28), bool), "dtype")]:
        with pytest.raises(LenetError, match=message):
            array_to_inputs(bad, "a")
    # 0..255 in an integer array other than uint8 (np.array of a list of ints) gets a hint.
    with pytest.raises(LenetError) as refused:
        array_to_inputs(np.full((28, 28), 255, np.int64), "a")
    assert str(refused.value) == "a: values must lie in [0, 1] (got 255..255); " \
                                 "for pixel values 0..255 use a uint8 array, not int64"
    with pytest.raises(LenetError, match="2-D"):
        normalize_digit(np.zeros((2, 2, 2)))


def test_npy_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(LenetError, match="evil.npy: not a valid .npy"):
        read_inputs(path)
