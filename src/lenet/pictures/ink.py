"""Finding the ink in a picture: the paper's shading taken away, the ink's side and a threshold
chosen from the picture's own noise, and the marks as connected components (used by digits and numbers).

numpy and Pillow only, for the start-up time of `lenet predict` (see lenet.pictures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import LenetError, NoInk

# Pictures are reduced by area averaging until the longer side is at most this many pixels before the
# ink is looked for: it bounds the work for a 12-megapixel photo and averages its sensor noise away,
# while a digit filling a tenth of the picture still has strokes a few pixels wide.
WORK_SIDE = 320
# Ink must stand out from the paper by this much (on a 0..1 scale) to count as a digit.
MIN_CONTRAST = 0.15
# The threshold stays this many noise deviations above the paper: pure noise crosses it at about
# one pixel in 3.5 million (a Gaussian tail), so grain does not become ink.
NOISE_SIGMAS = 5.0
HYSTERESIS = 0.5
# Pixels within this many noise deviations of the fitted surface count as paper when it is refitted.
PAPER_SIGMAS = 3.0
PAPER_FIT_SIDE = 64  # six numbers need few pixels
BORDER_ROUNDS = 3    # fits to the border alone before the whole picture is used
NOISE_FLOOR = 1 / 255  # a perfectly clean picture (MNIST itself) has no measurable noise
# Below this size the 5x5 smoothing used for thresholding would merge the strokes of a small digit.
SMOOTH_MIN_SIDE = 56
# A line along the picture (a ruled line, the paper's edge, a fold) runs from border to border and is
# thin for its length: length^2 / area above this. A hand-drawn 1 tightly cropped is about 10-20.
LINE_ELONGATION = 30.0
LINE_SPAN = 0.9  # of the picture's width or height, reaching within 2% of both borders
MIN_MARK_PIXELS = 3  # smaller marks are noise at any size of picture
# A bar: a mark at least this many times wider than tall. No digit is one, but a ruled line leaves
# them: on a narrow picture (too short to be thin for its length), or broken by noise, blur or fading.
BAR_ASPECT = 6.0


@dataclass(frozen=True)
class Mark:
    """One connected component of the ink, in working pixels (bottom and right exclusive)."""
    label: int
    top: int
    left: int
    bottom: int
    right: int
    area: int
    mass: float       # the sum of its ink values
    is_line: bool     # a line along the picture, not part of a digit

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def is_bar(self) -> bool:
        """A horizontal stroke far longer than tall: a piece of a line or a dash, or at most a digit's part."""
        return self.width >= BAR_ASPECT * self.height


@dataclass(frozen=True)
class Ink:
    """A picture's ink at working resolution: INK in [0, 1] (1: the ink's colour, 0: paper), the
    mark each pixel belongs to (LABELS, 0 for none), and how working pixels map to the picture's."""
    ink: np.ndarray                 # float32 (H, W)
    labels: np.ndarray              # int32 (H, W): i + 1 for marks[i]
    marks: tuple[Mark, ...]
    scale: tuple[float, float]      # picture pixels per working pixel, (y, x)

    def mask(self, marks) -> np.ndarray:
        """Boolean (H, W): the pixels of MARKS."""
        return np.isin(self.labels, [m.label for m in marks])


def find_ink(gray: np.ndarray, name: str, max_side: int = WORK_SIDE, min_short_side: int = 0) -> Ink:
    """The ink of a float (H, W) grey picture in [0, 1], either polarity; refuses a picture without any.

    The picture is reduced until its longer side is MAX_SIDE, or with MIN_SHORT_SIDE, a strip far
    longer than high is reduced less (see _work_side)."""
    gray, scale = _reduce(gray, _work_side(gray.shape, max_side, min_short_side))
    surface, paper = _paper(gray)
    residual = gray - surface
    noise = max(1.4826 * float(np.median(np.abs(residual[paper]))), NOISE_FLOOR)
    # The ink is on the side where the picture leaves the paper by more than noise could.
    beyond = NOISE_SIGMAS * noise
    if residual[residual < -beyond].sum() < -residual[residual > beyond].sum():
        residual = -residual
    # Threshold a smoothed copy: 5x5 smoothing divides white noise by about 3.7, strokes barely change.
    smoothed = min(gray.shape) >= SMOOTH_MIN_SIDE
    smooth = _blur(residual) if smoothed else residual
    smooth_noise = max(1.4826 * float(np.median(np.abs(smooth[paper]))), NOISE_FLOOR)
    # Otsu's threshold splits paper from ink wherever the ink's level is; the noise bound keeps it
    # above the grain when the ink is faint or the digit small.
    threshold = max(_otsu(np.clip(smooth, 0.0, None)), NOISE_SIGMAS * smooth_noise)
    # Hysteresis: fainter ink (down to HYSTERESIS of the threshold, never into the noise) is kept
    # where it joins ink above the threshold. A strong ruled line or shadow raises Otsu's threshold
    # above the faint half of a blurred or unevenly lit digit, which would break it into pieces.
    # Pictures too small to smooth are MNIST's own kind (28x28, drawn clean) and are left as they were.
    low = max(HYSTERESIS * threshold, NOISE_SIGMAS * smooth_noise) if smoothed else threshold
    faint, count = label_components(smooth > low)
    seeds = np.unique(faint[smooth > threshold])
    seeds = seeds[seeds > 0]
    # The ink is the faint components holding a seed, renumbered 1.. in their (reading) order: the
    # same labels a second pass of label_components over the ink would give, without that pass.
    renumber = np.zeros(count + 1, np.int32)
    renumber[seeds] = np.arange(1, len(seeds) + 1)
    labels, count = renumber[faint], len(seeds)
    mask = labels > 0
    no_ink = NoInk(f"{name}: no ink found (the image is blank or has too little contrast)")
    if not mask.any():
        raise no_ink
    # The ink's level is taken inside the strokes (their upper quartile), so that blurred, faint or
    # coloured ink still comes out as MNIST's full white; paper within two noise deviations becomes 0.
    level = float(np.percentile(residual[mask], 75))
    floor = min(2 * noise, level / 2)
    if float(smooth[mask].max()) < MIN_CONTRAST or level <= floor:
        # level <= floor: the strokes are no darker than the paper's own noise (a flat picture whose
        # smoothing alone made a mark); dividing by it would make NaN ink.
        raise no_ink
    ink = np.clip((residual - floor) / (level - floor), 0.0, 1.0).astype(np.float32)
    marks = [m for m in _marks(labels, count, ink) if m.area >= MIN_MARK_PIXELS]
    if not marks:
        raise no_ink
    return Ink(ink, labels, tuple(marks), scale)


def _work_side(shape: tuple[int, int], max_side: int, min_short_side: int) -> int:
    """The longer side a picture of SHAPE is reduced to: MAX_SIDE, unless that would leave its shorter
    side under MIN_SHORT_SIDE. Such a strip (a line of digits cut from a form) is reduced only until its
    shorter side is MIN_SHORT_SIDE, or as much more as keeps it within MAX_SIDE^2 working pixels, the
    work a square picture costs: reduced to MAX_SIDE along its length, a 40000x90 strip would become
    640x1, its digits averaged away. Only a strip wider than high is a line of digits: a tall one left
    unreduced (3x25893, a hairline from top to bottom) made a digit tens of thousands of pixels tall,
    whose strokes thickened to MNIST's took seconds."""
    longer, shorter = max(shape), min(shape)
    if shape[1] <= shape[0] or longer * min_short_side <= shorter * max_side:
        return max_side
    factor = max(shorter / min_short_side, math.sqrt(longer * shorter) / max_side, longer / max_side ** 2)
    return max(max_side, math.floor(longer / factor))


def _reduce(gray: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    height, width = gray.shape
    factor = max(height, width) / max_side
    if factor <= 1:
        return gray.astype(np.float32), (1.0, 1.0)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = np.asarray(Image.fromarray(gray.astype(np.float32)).resize(size, Image.Resampling.BOX))
    return small, (height / size[1], width / size[0])


def _paper(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's brightness as a smooth surface, and which pixels are paper.

    A quadratic in x and y covers a lighting gradient, vignetting and tinted paper. It is fitted on
    a copy reduced to PAPER_FIT_SIDE, first to the picture's border (paper in nearly every picture,
    whatever share of the rest the digit covers), then to every pixel near the surface, until those
    stop changing. Each fit drops what lies beyond PAPER_SIGMAS noise deviations: ink, specks, lines.
    """
    # Reduced until the longer side is PAPER_FIT_SIDE, but the shorter one no less than half of it,
    # so that a long strip (a number) keeps a border of its own paper.
    height, width = gray.shape
    factor = max(1.0, min(max(height, width) / PAPER_FIT_SIDE, 2 * min(height, width) / PAPER_FIT_SIDE))
    small, _ = _reduce(gray, round(max(height, width) / factor))
    height, width = small.shape
    u, v = _unit_grid(height, width)
    u, v = np.broadcast_to(u, small.shape).reshape(-1), np.broadcast_to(v, small.shape).reshape(-1)
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    values = small.reshape(-1)
    border = np.ones(small.shape, bool)
    border[2:-2, 2:-2] = False
    on_border = border.reshape(-1)
    coefficients = np.array([np.median(values[on_border]), 0, 0, 0, 0, 0])
    fitted = on_border
    for fit_round in range(12):
        residual = values - design @ coefficients
        noise = max(1.4826 * float(np.median(np.abs(residual[fitted]))), NOISE_FLOOR)
        near = np.abs(residual) <= PAPER_SIGMAS * noise
        now = near & on_border if fit_round < BORDER_ROUNDS else near
        if now.sum() < 6 or (fit_round > BORDER_ROUNDS and (now == fitted).all()):
            break
        fitted = now
        rows = design[fitted]  # least squares by the normal equations: six unknowns, well scaled
        coefficients = np.linalg.solve(rows.T @ rows + 1e-9 * np.eye(6), rows.T @ values[fitted])
    u, v = _unit_grid(*gray.shape)
    c = coefficients
    surface = (c[0] + c[1] * u + c[2] * v + c[3] * u * u + c[4] * u * v + c[5] * v * v).astype(np.float32)
    residual = np.abs(gray - surface)
    noise = max(1.4826 * float(np.median(residual)), NOISE_FLOOR)  # the ink is a minority of the pixels
    return surface, residual <= PAPER_SIGMAS * noise


def _unit_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x as a (1, W) row and y as an (H, 1) column, each running from -1 to 1."""
    return (np.linspace(-1, 1, width)[None, :] if width > 1 else np.zeros((1, 1)),
            np.linspace(-1, 1, height)[:, None] if height > 1 else np.zeros((1, 1)))


def _blur(image: np.ndarray) -> np.ndarray:
    """The binomial 5x5 filter (1 4 6 4 1)/16 along each axis, edges repeated."""
    p = np.pad(image, 2, mode="edge")
    p = (p[:, :-4] + 4 * p[:, 1:-3] + 6 * p[:, 2:-2] + 4 * p[:, 3:-1] + p[:, 4:]) / 16
    return (p[:-4] + 4 * p[1:-3] + 6 * p[2:-2] + 4 * p[3:-1] + p[4:]) / 16


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold: the cut of VALUES' histogram that maximizes the variance between the two sides."""
    values = values.reshape(-1)
    if float(values.max()) - float(values.min()) < 1e-6:
        # One level, give or take rounding: nothing to split (and numpy cannot cut a range of
        # subnormal floats into 256 bins). The contrast check after the threshold refuses it.
        return float(values.max())
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)
    above = len(values) - below
    sum_below = np.cumsum(counts * centres)[:-1]
    mean_below = sum_below / np.maximum(below, 1)
    mean_above = (float((counts * centres).sum()) - sum_below) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[1 + int(np.argmax(between))])


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 8-connected components of a boolean (H, W) MASK: int32 labels (0 off the mask, 1..N), N.

    Union-find over the mask's horizontal runs: a run joins each run of the next row that it
    touches, side by side or diagonally. Labels are numbered in reading order of their first pixel.
    """
    height, width = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # exclusive; both lists are in reading order, so they pair up
    labels = np.zeros((height, width), np.int32)
    if len(starts) == 0:
        return labels, 0
    stride = width + 2  # a key row * stride + column orders runs as they are read
    # Runs of row r + 1 touching run [s, e) of row r: those ending at or after s and starting at or before e.
    first = np.searchsorted(rows * stride + ends, (rows + 1) * stride + starts, side="left")
    last = np.searchsorted(rows * stride + starts, (rows + 1) * stride + ends, side="right")
    counts = np.maximum(last - first, 0)
    a = np.repeat(np.arange(len(starts)), counts)
    b = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(first, counts)
    parent = np.arange(len(starts))
    while True:
        root_a, root_b = parent[a], parent[b]
        apart = root_a != root_b
        if not apart.any():
            break
        # Hook the larger root under the smaller: pointers only go down, so no cycle can form.
        np.minimum.at(parent, np.maximum(root_a, root_b)[apart], np.minimum(root_a, root_b)[apart])
        while not (parent[parent] == parent).all():
            parent = parent[parent]
    _, run_labels = np.unique(parent, return_inverse=True)
    lengths = ends - starts
    run_of_pixel = np.repeat(np.arange(len(starts)), lengths)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    labels[rows[run_of_pixel], starts[run_of_pixel] + offset] = run_labels[run_of_pixel] + 1
    return labels, int(run_labels.max()) + 1


def _marks(labels: np.ndarray, count: int, ink: np.ndarray) -> list[Mark]:
    height, width = labels.shape
    flat = labels.reshape(-1)
    area = np.bincount(flat, minlength=count + 1)
    mass = np.bincount(flat, weights=ink.reshape(-1), minlength=count + 1)
    ys, xs = np.nonzero(labels)
    found = labels[ys, xs]
    top = np.full(count + 1, height)
    left = np.full(count + 1, width)
    bottom = np.zeros(count + 1, int)
    right = np.zeros(count + 1, int)
    np.minimum.at(top, found, ys)
    np.minimum.at(left, found, xs)
    np.maximum.at(bottom, found, ys + 1)
    np.maximum.at(right, found, xs + 1)
    marks = []
    for label in range(1, count + 1):
        box = (int(top[label]), int(left[label]), int(bottom[label]), int(right[label]))
        marks.append(Mark(label, *box, int(area[label]), float(mass[label]),
                          _is_line(box, int(area[label]), height, width)))
    return marks


def _is_line(box: tuple[int, int, int, int], area: int, height: int, width: int) -> bool:
    top, left, bottom, right = box
    across = right - left >= LINE_SPAN * width and left <= 0.02 * width and right >= 0.98 * width
    down = bottom - top >= LINE_SPAN * height and top <= 0.02 * height and bottom >= 0.98 * height
    length = max(right - left, bottom - top)
    return (across or down) and length * length / max(area, 1) >= LINE_ELONGATION


def stroke_width(mask: np.ndarray) -> float:
    """The mean width in pixels of the strokes in a boolean MASK: twice the area over the edge pixels
    (a stroke of width w and length L has area wL and about 2L edge pixels). At least 2."""
    p = np.pad(mask, 1)
    inside = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    edge = int((mask & ~inside).sum())
    return 2.0 * int(mask.sum()) / edge if edge else 0.0


def dilate(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation of IMAGE by an octagon of RADIUS pixels (alternating 3x3 squares and crosses, so
    that diagonal strokes grow about as much as straight ones)."""
    for step in range(radius):
        p = np.pad(image, 1, mode="edge")
        if step % 2:
            image = np.maximum(np.maximum(np.maximum(p[:-2, 1:-1], p[2:, 1:-1]), np.maximum(p[1:-1, :-2], p[1:-1, 2:])),
                               p[1:-1, 1:-1])
        else:  # a 3x3 square, as a row maximum then a column maximum
            rows = np.maximum(np.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
            image = np.maximum(np.maximum(rows[:-2], rows[1:-1]), rows[2:])
    return image
