"""Pictures that are not digits (letters, symbols, shapes, scribbles, textures, photo crops), generated
for training and measuring a gate that declines them.

Two families come from disjoint sources, so that a gate trained on one and measured on the other is
measured on marks it has never seen the like of: "training" draws glyphs from the DejaVu faces and
Pillow's built-in face, shapes of one set of kinds (triangle, rectangle, star, arrow, grid, crossing-out,
blob), random-walk scribbles and textures (noise fields, stripes); "held-out" draws glyphs from the STIX
and Computer Modern faces only, other shapes (smiley, heart, spiral, polygon with diagonals, crescent,
check mark, lightning bolt, cloud), scribbles of sinusoids and Bezier loops, and photo crops (smooth
fields with soft blobs and edges), from another random stream. Nothing is downloaded: the faces ship
with matplotlib and Pillow. No digit is ever drawn, nor any glyph or shape that can pass for one:
CONFUSABLE lists the excluded glyphs by the digit each resembles; shapes avoid plain circles (a 0),
single bars (a 1) and plain angles (a 7). Every mark is degraded as a photographed or scanned digit is
(canvas 28-400 px of any aspect, either polarity, coloured ink and paper, stroke width, rotation up to
15 degrees, noise, blur, a lighting gradient, JPEG); `negative_inputs` reads each as `lenet predict` reads
a file, skipping those it refuses and those of which it keeps only a fragment.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .errors import LenetError
from .pictures.inputs import image_to_input

FAMILIES = ("training", "held-out")
KINDS = {"training": ("glyph", "shape", "scribble", "texture"),
         "held-out": ("glyph", "shape", "scribble", "photo")}
# How often each kind is drawn: glyphs are the commonest thing a user shows instead of a digit.
KIND_SHARES = (0.4, 0.25, 0.2, 0.15)
# Each family has its own random stream, so the same seed gives unrelated pictures in the two.
_STREAMS = {"training": 0x6E65_6700, "held-out": 0x6E65_6701}

# Glyphs excluded because a reader of handwritten digits could fairly take them for one, grouped by
# that digit. 0: round letters and the degree sign. 1: anything that is one upright or slanted stroke
# (with a dot, a foot or a flag at most): I l i j J | ! and the brackets, slashes and small punctuation,
# which become tall thin strokes once scaled to MNIST's 20 px box. 2: Z z. 4: y, the shape of an
# open-topped 4. 5: S s. 6: b G. 7: T, and L (a plain angle: a 7 turned half round). 8: B & ß.
# 9: g q and a, whose single-storey form (STIX and Computer Modern italics) is a 9 with a short tail.
# Kept on purpose: A (two legs meeting at an apex, no digit's stroke), + (a cross, which no digit is),
# < > ^ (a point, not a corner with a bar), the curly braces (a middle cusp no 1 has).
CONFUSABLE = "OoQD°" "IlijJ|!¡/\\()[]',.;:`" "Zz" "y" "Ss" "bG" "TL" "B&ß" "gqa"
DIGITS = "0123456789"

LETTERS = "".join(c for c in map(chr, [*range(65, 91), *range(97, 123)]) if c not in CONFUSABLE)
_SYMBOLS = "+=#@%*?~<>{}$€§¶^×÷±≠-"
_GREEK = "ΔΛΞΠΣΨΩλπψω"
# Symbols that draw a shape of one family's kinds are that family's alone, so a held-out heart is not
# seen in training as a glyph.
_FAMILY_SYMBOLS = {"training": "★→", "held-out": "♥♡☺✓"}

PILLOW_FACE = "Pillow's built-in face"
_DEJAVU = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
           "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
           "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
           "DejaVuSansMono-BoldOblique.ttf")
_STIX = ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
# Computer Modern (matplotlib's BaKoMa files) keeps TeX's own encoding, not Unicode: letters and a few
# symbols sit at their ASCII places, but '<' is an inverted '!' in cmr10 and '$' a pound sign in cmti10;
# capital Greek sits at 161.. (matplotlib's _mathtext_data). So each face gets the characters checked to
# look as they should, and a map from a character to the code that draws it there.
_CM_GREEK = {"Δ": 162, "Λ": 164, "Ξ": 165, "Π": 166, "Σ": 167, "Ψ": 170}
_CM_FACES = {
    "cmr10.ttf": ("+=#@%*?$-", _CM_GREEK), "cmss10.ttf": ("+=#@%*?$-", _CM_GREEK),
    "cmb10.ttf": ("+=#@%*?$-", _CM_GREEK), "cmti10.ttf": ("+=#@%*?-", _CM_GREEK),
    "cmtt10.ttf": ("+=#@%*?$<>{}~^-", {}),
    "cmmi10.ttf": ("", {"<": 60, ">": 62, "λ": 184, "π": 188, "ψ": 195, "ω": 33}),
}
# The faces each family draws glyphs from (files under matplotlib's fonts/ttf), disjoint.
FONT_FILES = {"training": (*_DEJAVU, PILLOW_FACE), "held-out": (*_STIX, *_CM_FACES)}

DRAWING_PX = 224           # marks are drawn this large, then changed, turned and scaled to the canvas
_GLYPH_SIZES = (64, 96, 128)  # font sizes glyphs are drawn at (a smaller one, enlarged, is softer)
_CHECK_SIZE = 48           # font size at which a face is checked for each glyph
_MISSING = "\U0010FFFD"    # a private-use code no face has: what a face draws for a glyph it lacks


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


@functools.lru_cache(maxsize=None)
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    if face == PILLOW_FACE:
        return ImageFont.load_default(size=size)
    import matplotlib  # lazily: only generating glyphs needs its font files (pyplot is not imported)
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / face), size)


def _repertoire(face: str, family: str) -> dict[str, str]:
    """The characters FACE is asked for -> the text that draws each there."""
    if face in _CM_FACES:
        symbols, codes = _CM_FACES[face]
        wanted = {c: c for c in LETTERS + symbols} | {c: chr(code) for c, code in codes.items()}
    else:
        wanted = {c: c for c in LETTERS + _SYMBOLS + _GREEK + _FAMILY_SYMBOLS[family]}
    return {c: text for c, text in wanted.items() if c not in CONFUSABLE + DIGITS}


def _draw_text(font: ImageFont.FreeTypeFont, text: str, pad: int = 0) -> Image.Image | None:
    """TEXT in FONT, white on black, cropped to its ink with PAD pixels all round; None if it has no ink."""
    left, top, right, bottom = font.getbbox(text)
    if right <= left or bottom <= top:
        return None
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=255)
    return image


@functools.lru_cache(maxsize=None)
def _glyphs(family: str) -> tuple[tuple[str, str, str], ...]:
    """(face, character, text drawn) for every glyph FAMILY draws: those its faces have, checked by
    drawing each (a face draws a glyph it lacks as nothing, or as the box it draws for any missing one)."""
    _check_family(family)
    glyphs = []
    for face in FONT_FILES[family]:
        font = _font(face, _CHECK_SIZE)
        missing = _draw_text(font, _MISSING)
        for char, text in _repertoire(face, family).items():
            drawn = _draw_text(font, text)
            if drawn is not None and (missing is None or drawn.tobytes() != missing.tobytes()):
                glyphs.append((face, char, text))
    return tuple(glyphs)


def glyph_alphabet(family: str) -> str:
    """Every character FAMILY draws as a glyph, in some face."""
    return "".join(sorted({char for _, char, _ in _glyphs(family)}))


def _glyph(rng: np.random.Generator, family: str) -> Image.Image:
    glyphs = _glyphs(family)
    face, _, text = glyphs[int(rng.integers(len(glyphs)))]
    font = _font(face, int(rng.choice(_GLYPH_SIZES)))
    return _draw_text(font, text, pad=font.size // 8)


def _canvas(width: float = 1.0, height: float = 1.0) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A black mark WIDTH x HEIGHT in units of DRAWING_PX, to draw on in white. Shapes, scribbles and
    textures give their points in those units (see _px)."""
    mark = Image.new("L", (round(DRAWING_PX * width), round(DRAWING_PX * height)), 0)
    return mark, ImageDraw.Draw(mark)


def _pen(rng: np.random.Generator) -> int:
    """A stroke width in drawing pixels: from a fine pen to a marker (MNIST's is 0.13 of its box)."""
    return max(2, round(DRAWING_PX * rng.uniform(0.035, 0.14)))


def _px(points) -> list[tuple[float, float]]:
    return [(float(x) * DRAWING_PX, float(y) * DRAWING_PX) for x, y in points]


def _fit(points: np.ndarray, width: float = 1.0, height: float = 1.0, margin: float = 0.1) -> np.ndarray:
    """POINTS (N, 2) scaled and moved, aspect kept, into a WIDTH x HEIGHT box less MARGIN all round."""
    low, high = points.min(0), points.max(0)
    scale = min((width - 2 * margin) / max(high[0] - low[0], 1e-9), (height - 2 * margin) / max(high[1] - low[1], 1e-9))
    centred = (points - (low + high) / 2) * scale
    return centred + np.array([width / 2, height / 2])


def _outline_or_fill(draw: ImageDraw.ImageDraw, points, rng: np.random.Generator, fill_share: float = 0.3) -> None:
    if rng.random() < fill_share:
        draw.polygon(_px(points), fill=255)
    else:
        draw.line(_px([*points, points[0]]), fill=255, width=_pen(rng), joint="curve")


def _star_points(rng: np.random.Generator, tips: int, inner: float) -> np.ndarray:
    angles = -math.pi / 2 + np.arange(2 * tips) * math.pi / tips
    radii = np.where(np.arange(2 * tips) % 2 == 0, 1.0, inner) * rng.uniform(0.9, 1.1, 2 * tips)
    return _fit(np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1))


def _triangle(rng):
    mark, draw = _canvas()
    angles = -math.pi / 2 + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.4, 0.4, 3)
    _outline_or_fill(draw, _fit(np.stack([np.cos(angles), np.sin(angles)], 1)), rng)
    return mark


def _rectangle(rng):
    # Never much taller than wide: a tall narrow box reads as a 0.
    mark, draw = _canvas(rng.uniform(0.8, 2.5), 1.0)
    pen = _pen(rng)
    w, h = mark.width - pen, mark.height - pen
    box = [(pen, pen), (w, pen), (w, h), (pen, h), (pen, pen)]
    draw.line(box, fill=255, width=pen, joint="curve")
    if rng.random() < 0.4:  # a crossed box
        draw.line([box[0], box[2]], fill=255, width=pen)
        draw.line([box[1], box[3]], fill=255, width=pen)
    return mark


def _star(rng):
    mark, draw = _canvas()
    _outline_or_fill(draw, _star_points(rng, 5, rng.uniform(0.35, 0.5)), rng, fill_share=0.4)
    return mark


def _arrow(rng):
    # Left or right, within 40 degrees of level: an upright arrow would be a 1 with a flag.
    mark, draw = _canvas()
    angle = rng.uniform(-0.7, 0.7) + (math.pi if rng.random() < 0.5 else 0)
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    tail, tip = -direction, direction
    head = rng.uniform(0.5, 0.9)
    spread = rng.uniform(0.35, 0.7)
    wing1, wing2 = tip - head * direction + spread * normal, tip - head * direction - spread * normal
    points = _fit(np.stack([tail, tip, wing1, wing2]))
    pen = _pen(rng)
    draw.line(_px(points[:2]), fill=255, width=pen)
    if rng.random() < 0.4:
        draw.polygon(_px([points[1], points[2], points[3]]), fill=255)
    else:
        draw.line(_px([points[2], points[1], points[3]]), fill=255, width=pen, joint="curve")
    return mark


def _grid(rng):
    """A hash or a grid: 2-5 lines each way, slightly tilted, reaching past each other."""
    mark, draw = _canvas()
    pen = _pen(rng) // 2 + 2
    across, down = (int(v) for v in rng.integers(2, 6, 2))
    for y in np.linspace(0.25, 0.75, across):
        tilt = rng.uniform(-0.08, 0.08)
        draw.line(_px([(0.08, y - tilt), (0.92, y + tilt)]), fill=255, width=pen)
    for x in np.linspace(0.25, 0.75, down):
        lean = rng.uniform(-0.12, 0.12)
        draw.line(_px([(x + lean, 0.08), (x - lean, 0.92)]), fill=255, width=pen)
    return mark


def _crossing_out(rng):
    """A word scribbled out (a zigzag back and forth) or a patch of cross-hatching."""
    aspect = rng.uniform(1.0, 2.5)
    mark, draw = _canvas(aspect, 1.0)
    pen = max(2, _pen(rng) // 2)
    if rng.random() < 0.5:
        turns = int(rng.integers(6, 14))
        xs = np.where(np.arange(turns) % 2 == 0, 0.08, aspect - 0.08) + rng.normal(0, 0.04, turns)
        ys = np.linspace(0.15, 0.85, turns) + rng.normal(0, 0.03, turns)
        draw.line(_px(np.stack([xs, ys], 1)), fill=255, width=pen, joint="curve")
    else:
        spacing = rng.uniform(0.07, 0.12)
        for slope in (1, -1) if rng.random() < 0.7 else (1,):
            for offset in np.arange(-1.0, aspect + 1.0, spacing):  # the patch's edges cut the lines
                draw.line(_px([(offset, 0.0), (offset + slope, 1.0)]), fill=255, width=pen)
    return mark


def _blob(rng):
    """A filled blot with a wavy edge: a few random harmonics of the radius."""
    mark, draw = _canvas()
    angles = np.linspace(0, 2 * math.pi, 120, endpoint=False)
    radius = np.ones_like(angles)
    for k in range(2, 6):
        radius += rng.uniform(0, 0.35 / k * 2) * np.cos(k * angles + rng.uniform(0, 2 * math.pi))
    draw.polygon(_px(_fit(np.stack([np.cos(angles) * radius, np.sin(angles) * radius], 1))), fill=255)
    return mark


def _smiley(rng):
    mark, draw = _canvas()
    pen = _pen(rng) // 2 + 2
    d = DRAWING_PX
    draw.ellipse((0.08 * d, 0.08 * d, 0.92 * d, 0.92 * d), outline=255, width=pen)
    eye = rng.uniform(0.05, 0.09) * d
    for x in (0.36, 0.64):
        draw.ellipse((x * d - eye, 0.38 * d - eye, x * d + eye, 0.38 * d + eye), fill=255)
    sad = rng.random() < 0.3
    top = 0.6 if sad else 0.42
    draw.arc((0.28 * d, top * d, 0.72 * d, (top + 0.3) * d), 200 if sad else 20, 340 if sad else 160, fill=255, width=pen)
    return mark


def _heart(rng):
    mark, draw = _canvas()
    t = np.linspace(0, 2 * math.pi, 160, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    _outline_or_fill(draw, _fit(np.stack([x, y], 1)), rng, fill_share=0.5)
    return mark


def _spiral(rng):
    mark, draw = _canvas()
    turns = rng.uniform(2.5, 4.0)
    theta = np.linspace(0, 2 * math.pi * turns, 400) * (1 if rng.random() < 0.5 else -1)
    radius = 0.15 + np.abs(theta)
    points = _fit(np.stack([np.cos(theta) * radius, np.sin(theta) * radius], 1))
    draw.line(_px(points), fill=255, width=max(2, _pen(rng) // 3), joint="curve")
    return mark


def _polygon(rng):
    """A pentagon or hexagon, filled or with its diagonals drawn (its outline alone would be a 0)."""
    mark, draw = _canvas()
    sides = int(rng.integers(5, 7))
    angles = -math.pi / 2 + np.arange(sides) * 2 * math.pi / sides + rng.uniform(-0.1, 0.1, sides)
    points = _fit(np.stack([np.cos(angles), np.sin(angles)], 1))
    if rng.random() < 0.35:
        draw.polygon(_px(points), fill=255)
        return mark
    pen = _pen(rng) // 2 + 2
    draw.line(_px([*points, points[0]]), fill=255, width=pen, joint="curve")
    for i in range(sides):
        for j in range(i + 2, sides - (i == 0)):
            draw.line(_px([points[i], points[j]]), fill=255, width=pen)
    return mark


def _crescent(rng):
    mark, draw = _canvas()
    d = DRAWING_PX
    draw.ellipse((0.1 * d, 0.1 * d, 0.9 * d, 0.9 * d), fill=255)
    shift, size = rng.uniform(0.2, 0.35), rng.uniform(0.75, 0.9)
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = 0.5 + shift * math.cos(angle), 0.5 + shift * math.sin(angle)
    draw.ellipse(((cx - size / 2) * d, (cy - size / 2) * d, (cx + size / 2) * d, (cy + size / 2) * d), fill=0)
    return mark


def _check_mark(rng):
    # The short arm is at least 40% of the long one: shorter, the mark is a slanted 1.
    mark, draw = _canvas()
    short = rng.uniform(0.4, 0.6)
    corner = np.array([0.0, 1.0])
    start = corner + short * np.array([-0.6, -0.8]) + rng.normal(0, 0.05, 2)
    end = corner + np.array([0.7, -1.0]) + rng.normal(0, 0.05, 2)
    draw.line(_px(_fit(np.stack([start, corner, end]))), fill=255, width=_pen(rng), joint="curve")
    return mark


def _lightning(rng):
    mark, draw = _canvas()
    bolt = np.array([(0.55, 0.0), (0.15, 0.55), (0.45, 0.55), (0.3, 1.0), (0.85, 0.4), (0.55, 0.4), (0.75, 0.0)])
    draw.polygon(_px(_fit(bolt + rng.normal(0, 0.03, bolt.shape))), fill=255)
    return mark


def _cloud(rng):
    """Puffs along a flat base, filled or as the outline of their union (wide: not a 0)."""
    mark, draw = _canvas(1.6, 1.0)
    puffs = int(rng.integers(3, 6))
    xs = np.linspace(0.35, 1.25, puffs)
    radii = rng.uniform(0.18, 0.3, puffs)
    circles = [*zip(xs, 0.62 - radii * rng.uniform(0.3, 0.8, puffs), radii), *((x, 0.62, 0.16) for x in xs)]
    # The outline: the union of the circles less the union of the same circles a pen's width smaller.
    insets = (0.0,) if rng.random() < 0.4 else (0.0, _pen(rng) / DRAWING_PX)
    for inset, fill in zip(insets, (255, 0)):
        for x, y, r in circles:
            r -= inset
            draw.ellipse(_px([(x - r, y - r), (x + r, y + r)]), fill=fill)
    return mark


def _turning(points: np.ndarray) -> float:
    """The total absolute turning of a polyline, in radians."""
    steps = np.diff(points, axis=0)
    heading = np.unwrap(np.arctan2(steps[:, 1], steps[:, 0]))
    return float(np.abs(np.diff(heading)).sum())


def _random_walk(rng):
    """A scribble of 12-30 straight strokes, each turning sharply from the last."""
    mark, draw = _canvas()
    steps = int(rng.integers(12, 31))
    turns = rng.uniform(0.5, 2.6, steps) * rng.choice([-1, 1], steps)
    heading = np.cumsum(turns) + rng.uniform(0, 2 * math.pi)
    lengths = rng.uniform(0.1, 0.35, steps)
    points = np.concatenate([[[0, 0]], np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * lengths[:, None], 0)])
    draw.line(_px(_fit(points)), fill=255, width=max(2, _pen(rng) // 2), joint="curve")
    return mark


# A smooth scribble must turn through at least this much (three full turns) so that it is a tangle:
# an 8 turns through about 4 pi, a 6 or a 9 about 3 pi, and a 0 2 pi.
_MIN_SCRIBBLE_TURNING = 6 * math.pi


def _smooth_scribble(rng):
    """A closed tangle: a sum of random sinusoids, or a loop of Bezier curves through random points."""
    t = np.linspace(0, 2 * math.pi, 600)
    for _ in range(20):
        if rng.random() < 0.5:
            terms = int(rng.integers(3, 5))
            xy = [sum(rng.uniform(0.3, 1) / f * np.sin(f * t + rng.uniform(0, 2 * math.pi))
                      for f in rng.choice(np.arange(1, 8), terms, replace=False)) for _ in range(2)]
            points = np.stack(xy, 1)
        else:
            points = _bezier_loop(rng.uniform(0, 1, (int(rng.integers(6, 11)), 2)))
        if _turning(points) >= _MIN_SCRIBBLE_TURNING:
            break  # (nearly all pass within a few tries; after 20 the last is drawn as it is)
    mark, draw = _canvas()
    draw.line(_px(_fit(points)), fill=255, width=max(2, _pen(rng) // 2), joint="curve")
    return mark


def _bezier_loop(anchors: np.ndarray, samples: int = 30) -> np.ndarray:
    """A closed smooth curve through ANCHORS: cubic Bezier pieces with Catmull-Rom tangents."""
    previous, following = np.roll(anchors, 1, 0), np.roll(anchors, -1, 0)
    after = np.roll(anchors, -2, 0)
    s = np.linspace(0, 1, samples, endpoint=False)[:, None, None]
    c1, c2 = anchors + (following - previous) / 6, following - (after - anchors) / 6
    curve = ((1 - s) ** 3 * anchors + 3 * (1 - s) ** 2 * s * c1 + 3 * (1 - s) * s ** 2 * c2 + s ** 3 * following)
    points = curve.transpose(1, 0, 2).reshape(-1, 2)
    return np.concatenate([points, points[:1]])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth random values in [0, 1], (HEIGHT, WIDTH): a CELLS-wide grid of noise enlarged bicubically."""
    grid = Image.fromarray(rng.uniform(0, 255, (max(2, cells * height // width), cells)).astype(np.uint8))
    return np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC), np.float32) / 255


def _texture(rng):
    """A patch of blotchy noise or of stripes (8 or more, close enough to be read as one mark, not a 1)."""
    aspect = rng.uniform(0.7, 1.8)
    width, height = round(DRAWING_PX * aspect), DRAWING_PX
    if rng.random() < 0.5:
        field = _smooth_noise(rng, height, width, int(rng.integers(5, 14)))
        ink = field > np.quantile(field, rng.uniform(0.4, 0.7))
    else:
        ys, xs = np.mgrid[0:height, 0:width] / DRAWING_PX
        angle, period = rng.uniform(0, math.pi), rng.uniform(1 / 16, 1 / 8)
        wave = rng.uniform(0, 0.05) * np.sin(2 * math.pi * rng.uniform(1, 3) * ys)
        ink = np.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle) + wave) / period) > rng.uniform(-0.4, 0.4)
    if rng.random() < 0.4:  # an oval patch rather than a rectangle
        ys, xs = np.mgrid[0:height, 0:width]
        ink &= ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) < 0.25
    return Image.fromarray((ink * 255).astype(np.uint8))


def _photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A crop of a photograph, (HEIGHT, WIDTH) in [0, 1]: smooth shading, soft blobs and soft edges."""
    field = 0.4 * _smooth_noise(rng, height, width, int(rng.integers(2, 7)))
    side = max(height, width)
    ys, xs = np.mgrid[0:height, 0:width] / side
    # Blobs small and edges sharp enough to stand out from shading: the reader takes a smooth slope
    # across the whole picture for the paper's lighting.
    for _ in range(int(rng.integers(2, 7))):
        y, x, size = rng.uniform(0.1, 0.9) * height / side, rng.uniform(0.1, 0.9) * width / side, rng.uniform(0.04, 0.18)
        field += rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * size ** 2))
    for _ in range(int(rng.integers(0, 3))):
        angle, offset, softness = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.8), rng.uniform(0.003, 0.03)
        distance = xs * math.cos(angle) + ys * math.sin(angle) - offset
        field += rng.uniform(-0.6, 0.6) / (1 + np.exp(-np.clip(distance / softness, -50, 50)))
    low, high = field.min(), field.max()
    return (field - low) / max(high - low, 1e-6)


_SHAPES = {"training": (_triangle, _rectangle, _star, _arrow, _grid, _crossing_out, _blob),
           "held-out": (_smiley, _heart, _spiral, _polygon, _crescent, _check_mark, _lightning, _cloud)}


def _colours(rng: np.random.Generator, light_ink: bool, coloured: bool) -> tuple[np.ndarray, np.ndarray]:
    """(ink, paper) RGB in 0..255: black and white, or a coloured pen on tinted paper."""
    if not coloured:
        return (np.full(3, 255.0), np.zeros(3)) if light_ink else (np.zeros(3), np.full(3, 255.0))
    dark = rng.uniform(0, 90, 3) * rng.uniform(0.3, 1.0, 3)
    light = 255 - rng.uniform(0, 70, 3)
    return (light, dark) if light_ink else (dark, light)


def _place(mark: Image.Image, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """MARK with its strokes changed, turned and scaled onto a HEIGHT x WIDTH field with a margin."""
    stroke = rng.choice(["thick", "thin", "none"])
    if stroke != "none":
        # Grow or shrink every stroke by a share of the mark's size, as a broader or finer pen would.
        share = rng.uniform(0.01, 0.03) if stroke == "thick" else rng.uniform(0.004, 0.012)
        # R passes of a 3x3 filter grow by R pixels as one (2R+1)-square pass does, at 9R operations a
        # pixel instead of (2R+1)^2.
        for _ in range(max(1, round(max(mark.size) * share))):
            mark = mark.filter(ImageFilter.MaxFilter(3) if stroke == "thick" else ImageFilter.MinFilter(3))
    if rng.random() < 0.5:
        mark = mark.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BICUBIC, expand=True)
    field_px = max(14, min(height, width) * rng.uniform(0.5, 0.95))
    scale = field_px / max(mark.size)
    size = max(1, round(mark.width * scale)), max(1, round(mark.height * scale))
    # Reduced by area averaging, as a camera's pixels average the light; enlarged bicubically.
    mark = mark.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)
    field = np.zeros((height, width), np.float32)
    top, left = int(rng.integers(0, height - mark.height + 1)), int(rng.integers(0, width - mark.width + 1))
    field[top:top + mark.height, left:left + mark.width] = np.asarray(mark, np.float32) / 255
    return field


def _degrade(field: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """An ink map (H, W) in [0, 1] as a photographed or scanned picture's file: (bytes, "png" or "jpeg")."""
    height, width = field.shape
    ink, paper = _colours(rng, rng.random() < 0.5, rng.random() < 0.5)
    picture = paper + field[..., None] * (ink - paper)  # (H, W, 3)
    if rng.random() < 0.5:
        sigma = min(height, width) / 28 * rng.uniform(0.2, 0.8)
        picture = np.asarray(Image.fromarray(picture.clip(0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(sigma)), np.float32)
    if rng.random() < 0.5:  # light falling off across the sheet in one direction, plus vignetting
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width]
        u = ((xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)) + 0.5
        light = 1 - rng.uniform(0.3, 0.6) * np.clip(u, 0, 1)
        light *= 1 - 0.25 * ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2)
        picture = picture * light[..., None]
    if rng.random() < 0.5:  # the same deviation in every channel: sigma in grey levels
        picture = picture + rng.normal(0, rng.uniform(3, 12), (height, width))[..., None]
    image = Image.fromarray(picture.clip(0, 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        image.save(buffer, format="JPEG", quality=int(rng.integers(20, 91)))
        return buffer.getvalue(), "jpeg"
    image.save(buffer, format="PNG", compress_level=1)  # fast: the size of the file does not matter here
    return buffer.getvalue(), "png"


def photograph(mark: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """MARK (white ink on black, any size) as a picture a user would take, through the same steps as
    every non-digit here: a canvas of 28-400 px a side, stroke width, rotation, colours, blur, lighting,
    noise, JPEG. The digit gate's digits are drawn by it too, so that no degradation tells them apart."""
    width, height = (int(v) for v in rng.integers(28, 401, 2))
    return _degrade(_place(mark, rng, height, width), rng)


def _aspect(ink: np.ndarray) -> float | None:
    """The height over the width of the box holding INK's ink (above a tenth of its strongest); None if none."""
    strongest = float(ink.max())
    rows, cols = np.flatnonzero(ink.max(1) > 0.1 * strongest), np.flatnonzero(ink.max(0) > 0.1 * strongest)
    return (rows[-1] - rows[0] + 1) / (cols[-1] - cols[0] + 1) if strongest > 0 else None


# The reader keeps a picture's heaviest mark and the parts near it. A glyph with hairline strokes (STIX's
# and Computer Modern's serifs and thin sides), thinned, blurred or small, falls apart, and the reader may
# keep one thick stroke of it: a 'V', a 'u' or a 'Π' becomes a 1, an '=' a dash, a box an L. Such an
# input is no longer the mark and often is a digit's shape, so it is not a fair negative. Its box's
# height over width then differs from the mark's by a large factor, where an intact mark's differs by
# under 1.1 in nine pictures out of ten (a thickened stroke, blur).
FRAGMENT_ASPECT = 1.3


def _is_fragment(x: np.ndarray, mark_aspect: float) -> bool:
    aspect = _aspect(x)
    return aspect is None or abs(math.log(aspect / mark_aspect)) > math.log(FRAGMENT_ASPECT)


def _negative(rng: np.random.Generator, family: str) -> tuple[bytes, str, str, float | None]:
    """(picture file, its format, its kind, the height over the width of its mark; None for a photo)."""
    _check_family(family)
    kind = KINDS[family][int(rng.choice(len(KIND_SHARES), p=KIND_SHARES))]
    width, height = (int(v) for v in rng.integers(28, 401, 2))
    if kind == "photo":
        payload, fmt = _degrade(_photo(rng, height, width), rng)
        return payload, fmt, kind, None
    if kind == "glyph":
        mark = _glyph(rng, family)
    elif kind == "shape":
        shapes = _SHAPES[family]
        mark = shapes[int(rng.integers(len(shapes)))](rng)
    elif kind == "scribble":
        mark = _random_walk(rng) if family == "training" else _smooth_scribble(rng)
    else:
        mark = _texture(rng)
    field = _place(mark, rng, height, width)
    payload, fmt = _degrade(field, rng)
    return payload, fmt, kind, _aspect(field)


def negative_picture(rng: np.random.Generator, family: str) -> tuple[bytes, str]:
    """One encoded picture (PNG, or JPEG when that degradation was drawn) of a non-digit of FAMILY, and
    its kind ("glyph", "shape", "scribble", and "texture" in training or "photo" held out)."""
    payload, _, kind, _ = _negative(rng, family)
    return payload, kind


def negative_pictures(count: int, family: str, seed: int) -> list[tuple[bytes, str]]:
    """COUNT pictures of FAMILY from SEED (in the family's own random stream), with their kinds."""
    _check_family(family)
    rng = np.random.default_rng([seed, _STREAMS[family]])
    return [negative_picture(rng, family) for _ in range(count)]


def negative_inputs(count: int, family: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """COUNT float32 (N, 28, 28) inputs in [0, 1] made from pictures of FAMILY exactly as `lenet predict`
    reads a picture file (dataset "mnist"), with their kinds. A picture it refuses (no ink, only lines
    across it) is skipped and another drawn, so exactly COUNT come back; so is one of which it kept only a
    fragment (see FRAGMENT_ASPECT)."""
    _check_family(family)
    rng = np.random.default_rng([seed, _STREAMS[family]])
    inputs, kinds, skipped = [], [], 0
    while len(inputs) < count:
        payload, fmt, kind, aspect = _negative(rng, family)
        try:
            x = image_to_input(payload, f"negative-{len(inputs)}.{fmt}")
        except LenetError:
            x = None
        if x is None or (aspect is not None and _is_fragment(x, aspect)):
            skipped += 1
            # About 3 in 100 are skipped in training, 11 in held-out (half the photo crops have no
            # ink to find); nearly all would mean the reader changed under this code.
            if skipped > 100 + count:
                raise RuntimeError(f"{skipped} of {skipped + len(inputs)} negative pictures skipped")
            continue
        inputs.append(x)
        kinds.append(kind)
    return np.stack(inputs) if inputs else np.zeros((0, 28, 28), np.float32), kinds

