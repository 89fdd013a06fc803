"""A grey picture of one digit -> MNIST's 28x28 input, made by MNIST's own normalization (LeCun et al.):
the digit's marks found in its ink, strokes brought to MNIST's thickness, the digit scaled so its longer
side is 20 px with the aspect ratio kept, placed in a 28x28 field with its centre of mass where MNIST's are.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ..errors import LenetError, NoInk, SeveralDigits
from .decode import check_gray
from .ink import Ink, Mark, dilate, find_ink, stroke_width

DIGIT_BOX = 20
FIELD = 28
# Where MNIST puts a digit's centre of mass: row and column 14.0 counted from 0 (the mean over its test
# digits, 13.99 and 14.01, each within half a pixel of it), not the field's geometric centre 13.5.
# Aiming at 13.5 moved three in four clean MNIST digits by a pixel, costing about 0.3 points of accuracy.
MNIST_CENTRE = 14.0
INK_THRESHOLD = 0.1  # the digit's box holds the ink above this
# MNIST's strokes, measured on its test digits in the 28x28 field (twice the area over the edge pixels
# of the pixels above 0.5): median 2.66 px, 5th percentile 2.05 px. Thinner ones are thickened to the median.
MNIST_STROKE_PX = 2.66
THIN_STROKE_PX = 2.0
# A mark joins the digit when it holds at least this share of the main mark's ink and lies within this
# share of the digit's size from the digit's box (a 5's bar, a broken stroke); specks farther off are dropped.
PART_MASS = 0.02
PART_GAP = 0.15
# A picture holds several digits when a mark beside the digit is at least NEIGHBOUR_HEIGHT of its height,
# NEIGHBOUR_MASS of its main mark's ink, and has NEIGHBOUR_LINE of its own height within the digit's rows.
NEIGHBOUR_HEIGHT = 0.6
NEIGHBOUR_MASS = 0.25
NEIGHBOUR_LINE = 0.5


def normalize_digit(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A float (H, W) grey picture of one digit in [0, 1] -> float32 (28, 28), white digit on black, MNIST-style."""
    check_gray(gray, name)
    ink = find_ink(gray, name)
    mask = ink.mask(_digit_marks(ink, name))
    return mnist_field(digit_ink(ink, mask, stroke_width(mask)), name)


def _digit_marks(ink: Ink, name: str) -> list[Mark]:
    """The marks of the one digit in a picture: the one with the most ink and the parts near it."""
    marks = [m for m in ink.marks if not m.is_line]
    if not marks:
        raise LenetError(f"{name}: no digit found, only lines running across the picture")
    # A bar (a piece of a ruled line) can outweigh a thin or faint digit, but is never the digit
    # itself: it may only join one as a part (a 5's or a 7's bar).
    main = max([m for m in marks if not m.is_bar] or marks, key=lambda m: m.mass)
    chosen, box = [main], mark_box(main)
    # Only marks heavy enough to be a part can join; on a speckled page that is a handful, not thousands.
    candidates = [m for m in marks if m.label != main.label and m.mass >= PART_MASS * main.mass]
    grew = True
    while grew:  # a part joined widens the box, which may bring the next part within reach
        grew = False
        for m in list(candidates):
            if _gap(box, m) <= PART_GAP * max(box[2] - box[0], box[3] - box[1]):
                chosen.append(m)
                candidates.remove(m)
                box = union_box(box, mark_box(m))
                grew = True
    _refuse_neighbours(marks, chosen, box, main, name)
    return chosen


def _refuse_neighbours(marks: list[Mark], chosen: list[Mark], box: tuple[int, int, int, int], main: Mark,
                       name: str) -> None:
    """Refuse a picture of a number: another mark nearly as tall as the digit, beside it on its line
    and heavy enough to be a digit (a 1 has about a third of an 8's ink), is another digit."""
    top, left, bottom, right = box
    taken = {m.label for m in chosen}
    for m in marks:
        beside = m.right <= left or m.left >= right
        same_line = min(m.bottom, bottom) - max(m.top, top) >= NEIGHBOUR_LINE * m.height
        if (m.label not in taken and not m.is_bar and beside and same_line
                and m.height >= NEIGHBOUR_HEIGHT * (bottom - top) and m.mass >= NEIGHBOUR_MASS * main.mass):
            raise SeveralDigits(f"{name}: several digits side by side (`lenet predict --number` reads numbers)")


def mark_box(mark: Mark) -> tuple[int, int, int, int]:
    """MARK's box as (top, left, bottom, right), bottom and right exclusive."""
    return mark.top, mark.left, mark.bottom, mark.right


def union_box(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The smallest box holding boxes A and B."""
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _gap(box: tuple[int, int, int, int], mark: Mark) -> int:
    """Pixels between BOX and MARK's box along the axis where they are farther apart (0 if they overlap)."""
    top, left, bottom, right = box
    return max(mark.top - bottom, top - mark.bottom, mark.left - right, left - mark.right, 0)


def digit_ink(ink: Ink, mask: np.ndarray, stroke_px: float) -> np.ndarray:
    """The ink of the digit whose marks are MASK, other marks blanked, thin strokes thickened."""
    # The threshold cuts through the soft edge of each stroke; the anti-aliased rim outside it is kept.
    rim = max(2, round(stroke_px / 2))
    digit = np.where(dilate(mask.astype(np.float32), rim) > 0, ink.ink, 0.0).astype(np.float32)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    # A fine pen on a large sheet would come out as hair-thin, faint strokes after scaling to 20 px,
    # unlike any digit the networks were trained on: thicken them to MNIST's median width.
    if stroke_px * DIGIT_BOX / longest < THIN_STROKE_PX:
        digit = dilate(digit, round((MNIST_STROKE_PX * longest / DIGIT_BOX - stroke_px) / 2))
    return digit


def mnist_field(ink: np.ndarray, name: str) -> np.ndarray:
    """MNIST's steps for an ink map: crop to the ink, longer side to 20 px keeping the aspect ratio,
    centre of mass where MNIST's are in the 28x28 field."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(0))
    if len(rows) == 0:
        raise NoInk(f"{name}: no ink found (the image is blank or has too little contrast)")
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    height, width = ink.shape
    if max(height, width) == DIGIT_BOX:
        # Already MNIST's size (an MNIST image, say): resampling would only blur it.
        centre_y, centre_x = _centre_of_mass(ink)
        return place_in_field(ink, round(MNIST_CENTRE - centre_y), round(MNIST_CENTRE - centre_x))
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scale_x, scale_y = size[0] / width, size[1] / height
    centre_y, centre_x = _centre_of_mass(ink)
    # Where the box goes so that the centre of mass lands on MNIST's: Pillow maps pixel centres as
    # (p + 0.5) * s - 0.5. The whole pixels are an offset; the fraction is folded into the resampling
    # (its source window moves), so it costs no second interpolation. The fraction is rounded to
    # thirds of a pixel: a shift of half a pixel would smear every straight edge over two half-grey pixels.
    top = MNIST_CENTRE - ((centre_y + 0.5) * scale_y - 0.5)
    left = MNIST_CENTRE - ((centre_x + 0.5) * scale_x - 0.5)
    top, left = round(3 * top) / 3, round(3 * left) / 3
    shift_y, shift_x = top - math.floor(top), left - math.floor(left)
    pad = math.ceil(1 / min(scale_x, scale_y)) + 1
    window = (pad - shift_x / scale_x, pad - shift_y / scale_y,
              pad + (size[0] + 1 - shift_x) / scale_x, pad + (size[1] + 1 - shift_y) / scale_y)
    box = Image.fromarray(np.pad(ink, pad)).resize((size[0] + 1, size[1] + 1), Image.Resampling.LANCZOS, box=window)
    return place_in_field(np.clip(np.asarray(box), 0.0, 1.0), math.floor(top), math.floor(left))


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    total = float(ink.sum())
    return float(ink.sum(1) @ np.arange(ink.shape[0])) / total, float(ink.sum(0) @ np.arange(ink.shape[1])) / total


def place_in_field(box: np.ndarray, top: int, left: int) -> np.ndarray:
    """BOX in a black 28x28 field with its top left corner at (TOP, LEFT), moved as little as needed
    to stay inside."""
    box = box[:FIELD, :FIELD]
    top = int(np.clip(top, 0, FIELD - box.shape[0]))
    left = int(np.clip(left, 0, FIELD - box.shape[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return field
