"""A grey picture of a number written on one line -> its digits' MNIST inputs (NumberInputs): the marks
grouped into digits left to right, a group too wide for one digit also read cut into two or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LenetError
from .decode import MAX_IMAGE_PIXELS, check_gray, decode_image
from .digits import PART_GAP, digit_ink, mark_box, mnist_field, union_box
from .ink import Mark, find_ink, stroke_width

# Numbers: several digits side by side need more working pixels than one.
NUMBER_WORK_SIDE = 640
MAX_NUMBER_MARKS = 32
SPECK_SHARE = 0.25           # of a digit's height: smaller marks are specks
PART_HEIGHT = 0.5            # of a digit's height: lower marks are parts of a digit
SAME_DIGIT_OVERLAP = 0.5     # see _columns
# A group of marks may be two or more touching digits when it is wider than TOUCHING_ASPECT digit
# heights or TOUCHING_WIDTHS times the typical digit's width; it is then also read cut into 2 up to
# width / typical width digits, each cut sought within CUT_WINDOW of a digit's width of where even
# spacing would put it.
TOUCHING_ASPECT = 1.0
TOUCHING_WIDTHS = 1.4
DIGIT_ASPECT = 0.7           # the typical width when every group is too wide to tell
CUT_WINDOW = 0.4


@dataclass(frozen=True)
class NumberInputs:
    """The digits of a picture of a number, left to right. A group of marks too wide for one digit may
    be touching digits: it is read several ways (as one digit, as two, ...) and whoever predicts
    keeps the way the network is surest of (predict.read_number_result)."""
    inputs: np.ndarray                          # float32 (N, 28, 28): every way of every group
    boxes: list[tuple[int, int, int, int]]      # each input's box (x, y, width, height) in picture pixels
    groups: list[list[tuple[int, ...]]]         # per group, its ways: indices into inputs, left to right


def normalize_number(gray: np.ndarray, name: str = "image") -> NumberInputs:
    """A grey picture of digits written on one line -> their MNIST-style inputs (see NumberInputs)."""
    check_gray(gray, name)
    ink = find_ink(gray, name, NUMBER_WORK_SIDE)
    marks = [m for m in ink.marks if not m.is_line]
    if not marks:
        raise LenetError(f"{name}: no digits found, only lines running across the picture")
    tallest = max(m.height for m in marks)
    digit_height = float(np.median([m.height for m in marks if m.height >= tallest / 2]))
    # Specks: under a quarter of a digit's height either way; dropped unless they lie over a digit.
    specks = [m for m in marks if max(m.height, m.width) < SPECK_SHARE * digit_height]
    # A bar wider than a digit is tall is no digit's part (a 5's or a 7's bar is narrower than its
    # digit): it is an underline or a piece of a ruled line, and joined to a digit it would widen it
    # into "touching digits".
    rules = [m for m in marks if m.is_bar and m.width > digit_height]
    marks = [m for m in marks if m not in specks and m not in rules]
    if not marks:
        raise LenetError(f"{name}: no digits found, only lines and bars")
    if len(marks) > MAX_NUMBER_MARKS:
        raise LenetError(f"{name}: {len(marks)} separate marks, more than the {MAX_NUMBER_MARKS} a number "
                         f"may have (is this one line of digits?)")
    # Marks under half a digit's height are parts of one (a 5's bar, a broken stroke), not digits.
    parts = [m for m in marks if m.height < PART_HEIGHT * digit_height]
    groups = _columns([m for m in marks if m not in parts])
    if not groups:
        groups, parts = _columns(parts), []
    for mark in parts + specks:
        best = max(groups, key=lambda g: _x_overlap(mark, _group_box(g)))
        if _x_overlap(mark, _group_box(best)) > 0 or (mark in parts and _x_gap(mark, _group_box(best)) <= PART_GAP * digit_height):
            best.append(mark)
    widths = [_group_box(g)[3] - _group_box(g)[1] for g in groups]
    single = [w for w in widths if w <= TOUCHING_ASPECT * digit_height]
    digit_width = float(np.median(single)) if single else DIGIT_ASPECT * digit_height
    stroke_px = stroke_width(ink.mask(marks))
    y_scale, x_scale = ink.scale
    inputs, boxes, ways = [], [], []
    for group in groups:
        mask, box = ink.mask(group), _group_box(group)
        width = box[3] - box[1]
        most = 1 if width <= min(TOUCHING_ASPECT * digit_height, TOUCHING_WIDTHS * digit_width) \
            else max(2, round(width / digit_width))
        ways.append([])
        for count in range(1, most + 1):
            indices = []
            for piece in _cut(mask, box, count):
                rows, cols = np.flatnonzero(piece.any(1)), np.flatnonzero(piece.any(0))
                indices.append(len(inputs))
                inputs.append(mnist_field(digit_ink(ink, piece, stroke_px), name))
                boxes.append((round(cols[0] * x_scale), round(rows[0] * y_scale),
                              round((cols[-1] + 1 - cols[0]) * x_scale), round((rows[-1] + 1 - rows[0]) * y_scale)))
            ways[-1].append(tuple(indices))
    return NumberInputs(np.stack(inputs), boxes, ways)


def _x_overlap(mark: Mark, box: tuple[int, int, int, int]) -> int:
    return min(mark.right, box[3]) - max(mark.left, box[1])


def _x_gap(mark: Mark, box: tuple[int, int, int, int]) -> int:
    return max(mark.left - box[3], box[1] - mark.right, 0)


def _group_box(group: list[Mark]) -> tuple[int, int, int, int]:
    box = mark_box(group[0])
    for m in group[1:]:
        box = union_box(box, mark_box(m))
    return box


def _columns(marks: list[Mark]) -> list[list[Mark]]:
    """MARKS grouped into digits, left to right: marks whose columns overlap by at least half the
    narrower one's width are one digit (a 4 written in two strokes)."""
    groups: list[list[Mark]] = []
    for mark in sorted(marks, key=lambda m: (m.left, m.top)):
        for group in groups:
            top, left, bottom, right = _group_box(group)
            if _x_overlap(mark, (top, left, bottom, right)) >= SAME_DIGIT_OVERLAP * min(right - left, mark.width):
                group.append(mark)
                break
        else:
            groups.append([mark])
    return sorted(groups, key=lambda g: _group_box(g)[1])


def _cut(mask: np.ndarray, box: tuple[int, int, int, int], count: int) -> list[np.ndarray]:
    """MASK (one group of marks in BOX) cut into COUNT digits, at the columns of least ink near
    where evenly spaced cuts would fall."""
    if count == 1:
        return [mask]
    top, left, bottom, right = box
    width = right - left
    profile = np.convolve(mask[top:bottom, left:right].sum(0).astype(np.float32), np.ones(3) / 3, mode="same")
    cuts, step = [0], width / count
    for k in range(1, count):
        low = max(int(k * step - CUT_WINDOW * step), cuts[-1] + 1)
        high = min(int(k * step + CUT_WINDOW * step) + 1, width - 1)
        if low < high:
            cuts.append(low + int(np.argmin(profile[low:high])))
    cuts.append(width)
    pieces = []
    for a, b in zip(cuts, cuts[1:]):
        piece = np.zeros_like(mask)
        piece[:, left + a:left + b] = mask[:, left + a:left + b]
        if piece.any():
            pieces.append(piece)
    return pieces


def image_to_number_inputs(payload: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> NumberInputs:
    """Image file bytes of a number -> its digits' float32 (N, 28, 28) inputs and boxes (see normalize_number)."""
    return normalize_number(decode_image(payload, name, max_pixels), name)
