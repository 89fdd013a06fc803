"""A grey picture of a number written on one line -> its digits' MNIST inputs (NumberInputs): the marks
grouped into digits left to right, a group too wide for one digit also read cut into two or more.

The work is bounded whatever the picture: marks too small to be digits, too many marks or specks, or
groups that would take more than MAX_NUMBER_INPUTS inputs to read are refused, not read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import LenetError
from .decode import MAX_IMAGE_PIXELS, check_gray, decode_image
from .digits import DIGIT_BOX, MNIST_STROKE_PX, PART_GAP, digit_ink, mark_box, mnist_field, union_box
from .ink import Ink, Mark, find_ink, stroke_width

# Numbers: several digits side by side need more working pixels than one.
NUMBER_WORK_SIDE = 640
# A strip far longer than high (a line of digits cut from a form) keeps at least this many pixels
# across, the working pixels allowing (see ink._work_side): digits filling its height stay larger
# than MNIST's 20-px box instead of being averaged away.
NUMBER_SHORT_SIDE = 64
MAX_NUMBER_MARKS = 32
SPECK_SHARE = 0.25           # of a digit's height: smaller marks are specks
PART_HEIGHT = 0.5            # of a digit's height: lower marks are parts of a digit
SAME_DIGIT_OVERLAP = 0.5     # see _columns
# A digit lower than this (in working pixels) cannot be read: 5x7 is the smallest pixel font that draws
# every digit distinctly, and an 8 or a 3 needs its three bars and two gaps apart. Lower marks are
# specks or noise (random specks on a page leave clusters 2-4 pixels high), and read as digits they
# would give digits that are not there.
MIN_DIGIT_HEIGHT = 7
# Specks are dropped, or joined to the digit they lie over; a picture with more of them than twice the
# digits a number may have is speckled (dust, a noisy scan, a dot grid) and its digits, if any, are
# not what would be read.
MAX_SPECKS = 2 * MAX_NUMBER_MARKS
# A group of marks may be two or more touching digits when it is wider than TOUCHING_ASPECT digit
# heights or TOUCHING_WIDTHS times the typical digit's width; it is then also read cut into 2 up to
# width / typical width digits, each cut sought within CUT_WINDOW of a digit's width of where even
# spacing would put it.
TOUCHING_ASPECT = 1.0
TOUCHING_WIDTHS = 1.4
DIGIT_ASPECT = 0.7           # the typical width when every group is too wide to tell
CUT_WINDOW = 0.4
# The typical width is never taken under this share of a digit's height: only a 1 is narrower (99.9% of
# MNIST's other test digits are wider), so hairlines and 1s cannot make a wide group seem to hold
# dozens of digits. A group is thus cut into at most width / (NARROWEST_DIGIT * height) digits.
NARROWEST_DIGIT = 0.4
# The inputs one picture may take: its groups read every way they may be cut (one read as 1 to n
# digits takes n(n+1)/2 inputs). A number of MAX_NUMBER_MARKS digits read four ways each; far more
# than numbers need (two touching digits take 3 inputs, three 6), and few enough that making them and
# the network's reading of them stay well under a second. More, and the picture is refused.
MAX_NUMBER_INPUTS = 4 * MAX_NUMBER_MARKS


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
    ink = find_ink(gray, name, NUMBER_WORK_SIDE, NUMBER_SHORT_SIDE)
    marks = [m for m in ink.marks if not m.is_line]
    if not marks:
        raise LenetError(f"{name}: no digits found, only lines running across the picture")
    tallest = max(m.height for m in marks)
    digit_height = float(np.median([m.height for m in marks if m.height >= tallest / 2]))
    if digit_height < MIN_DIGIT_HEIGHT:
        reduced = f" once reduced to {ink.ink.shape[1]}x{ink.ink.shape[0]}" if ink.scale != (1.0, 1.0) else ""
        raise LenetError(f"{name}: no digits found, only specks: its marks are about {digit_height:g} px high"
                         f"{reduced}, under the {MIN_DIGIT_HEIGHT} px a digit needs")
    # Specks: under a quarter of a digit's height either way; dropped unless they lie over a digit.
    # A bar wider than a digit is tall is no digit's part (a 5's or a 7's bar is narrower than its
    # digit): it is an underline or a piece of a ruled line, and joined to a digit it would widen it
    # into "touching digits". (One pass: a speckled page has tens of thousands of marks.)
    specks, rules, kept = [], [], []
    for m in marks:
        if max(m.height, m.width) < SPECK_SHARE * digit_height:
            specks.append(m)
        elif m.is_bar and m.width > digit_height:
            rules.append(m)
        else:
            kept.append(m)
    if len(specks) > MAX_SPECKS:
        raise LenetError(f"{name}: {len(specks)} specks beside the marks of digits' height, more than the "
                         f"{MAX_SPECKS} a picture of a number may have (too speckled to read)")
    marks = kept
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
    boxes = [_group_box(g) for g in groups]
    widths = [box[3] - box[1] for box in boxes]
    single = [w for w in widths if w <= TOUCHING_ASPECT * digit_height]
    digit_width = max(float(np.median(single)) if single else DIGIT_ASPECT * digit_height,
                      NARROWEST_DIGIT * digit_height)
    most = [1 if width <= min(TOUCHING_ASPECT * digit_height, TOUCHING_WIDTHS * digit_width)
            else max(2, round(width / digit_width)) for width in widths]
    count = sum(n * (n + 1) // 2 for n in most)
    if count > MAX_NUMBER_INPUTS:
        raise LenetError(f"{name}: reading its marks would take {count} inputs, more than the {MAX_NUMBER_INPUTS} "
                         f"a number may (a mark as wide as {max(most)} digits: is this one line of digits?)")
    stroke_px = stroke_width(ink.mask(marks))
    y_scale, x_scale = ink.scale
    inputs, input_boxes, ways = [], [], []
    for group, box, n in zip(groups, boxes, most):
        mask = ink.mask(group)
        ways.append([])
        for digits in range(1, n + 1):
            indices = []
            for columns in _cut(mask, box, digits):
                digit, (top, left, height, width) = _piece_ink(ink, mask, *columns, stroke_px)
                indices.append(len(inputs))
                inputs.append(mnist_field(digit, name))
                input_boxes.append((round(left * x_scale), round(top * y_scale),
                                    round(width * x_scale), round(height * y_scale)))
            ways[-1].append(tuple(indices))
    return NumberInputs(np.stack(inputs), input_boxes, ways)


def _piece_ink(ink: Ink, mask: np.ndarray, left: int, right: int, stroke_px: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The digit_ink of MASK's columns LEFT to RIGHT, and their ink's box (top, left, height, width).

    Made in a window around the piece, not the whole picture, so that its cost is set by the piece:
    digit_ink grows a digit by its rim (max(2, round(stroke / 2)) pixels) and, for a fine pen, by up to
    half MNIST's stroke at the piece's scale. A window one pixel wider than both keeps its edge (which
    dilation repeats outward) blank, and gives the same digit as the whole picture would."""
    rows = np.flatnonzero(mask[:, left:right].any(1))
    cols = left + np.flatnonzero(mask[:, left:right].any(0))
    height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    reach = max(2, math.ceil(stroke_px / 2)) + math.ceil(MNIST_STROKE_PX * max(height, width) / DIGIT_BOX / 2) + 1
    top, bottom = max(rows[0] - reach, 0), min(rows[-1] + 1 + reach, mask.shape[0])
    start, stop = max(cols[0] - reach, 0), min(cols[-1] + 1 + reach, mask.shape[1])
    piece = np.zeros((bottom - top, stop - start), bool)
    inside = slice(max(left, start), min(right, stop))
    piece[:, inside.start - start:inside.stop - start] = mask[top:bottom, inside]
    window = replace(ink, ink=ink.ink[top:bottom, start:stop], labels=ink.labels[top:bottom, start:stop], marks=())
    return digit_ink(window, piece, stroke_px), (int(rows[0]), int(cols[0]), int(height), int(width))


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


def _cut(mask: np.ndarray, box: tuple[int, int, int, int], count: int) -> list[tuple[int, int]]:
    """The columns (left, right) of COUNT digits in MASK (one group of marks in BOX), cut at the columns
    of least ink near where evenly spaced cuts would fall; pieces without ink are left out."""
    top, left, bottom, right = box
    if count == 1:
        return [(left, right)]
    width = right - left
    profile = np.convolve(mask[top:bottom, left:right].sum(0).astype(np.float32), np.ones(3) / 3, mode="same")
    cuts, step = [0], width / count
    for k in range(1, count):
        low = max(int(k * step - CUT_WINDOW * step), cuts[-1] + 1)
        high = min(int(k * step + CUT_WINDOW * step) + 1, width - 1)
        if low < high:
            cuts.append(low + int(np.argmin(profile[low:high])))
    cuts.append(width)
    return [(left + a, left + b) for a, b in zip(cuts, cuts[1:]) if mask[top:bottom, left + a:left + b].any()]


def image_to_number_inputs(payload: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> NumberInputs:
    """Image file bytes of a number -> its digits' float32 (N, 28, 28) inputs and boxes (see normalize_number)."""
    return normalize_number(decode_image(payload, name, max_pixels), name)
