"""Seeded pictures built to make reading them costly, and the work each takes: the network inputs the number
reader (pictures.numbers.image_to_number_inputs, what `lenet predict --number` and POST /read run) and the
single-picture path (pictures.inputs.image_to_input, what `lenet predict` runs) make of them, and the CPU
seconds of making those inputs plus the network's forward pass on them.

The families are the shapes that cost minutes before reading a number was bounded (zig-zags beside
hairlines, pages of 2x2 specks, long thin strips) and their neighbours: many tiny marks, dense scribbles,
rows of touching digits, noise, dot grids and random sizes, each encoded as a grey, palette, 1-bit, 16-bit
or transparent PNG or a JPEG, and mutated PNG bytes of them (raw edits, or chunks edited with their
checksums recomputed, so that the decoder reads them). Case INDEX of SEED is drawn from its own generator
(work_case), so one case can be rebuilt alone. benchmarks/fuzzing/fuzz.py --kind work runs it at scale;
tests/test_fuzz.py briefly.
"""

from __future__ import annotations

import io
import random
import time
import traceback
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lenet.errors import LenetError
from lenet.testing.fuzz_cases import Hang, check_inputs, time_limit, mutate_bytes

WORK_BOUND_S = 2.0  # what reading one picture may cost, inputs and forward pass together
# A case past this is stopped and counted as a hang (its seconds then a lower bound), so that one
# runaway case cannot stall a run of 10^5.
WORK_CASE_LIMIT_S = 30.0
# The share of cases drawn large (pages up to 2000x2000, strips up to 40000 long, up to 6 megapixels):
# 10^5 cases must finish well within an hour on one core. A small case takes about 25 ms to make and read
# both ways (1,000 at a share of 0.01 took 33 s of CPU), a large one 0.1-0.3 s. Small pictures stay under
# 0.7 megapixels, most under 0.1.
LARGE_SHARE = 0.005
FORWARD_MODEL = "tutorial-cnn"  # the largest of the tutorial networks lenet serves
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PATHS = ("number", "picture")


@dataclass(frozen=True)
class WorkCase:
    index: int
    family: str
    encoding: str
    size: tuple[int, int]  # (width, height) as drawn, before any mutation
    payload: bytes


# --- the pictures: uint8 grey, white paper (255) and black ink (0) --------------------------------------

def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _canvas(rng, large: bool, width=(100, 560), height=(30, 200)) -> Image.Image:
    if large:
        width, height = (800, 2000), (400, 2000)
    return Image.new("L", (int(rng.integers(*width)), int(rng.integers(*height))), 255)


def _zigzag(draw: ImageDraw.ImageDraw, left, right, top, bottom, teeth: int, width: int) -> None:
    draw.line([(left + i * (right - left) / teeth, top if i % 2 else bottom) for i in range(teeth + 1)],
              fill=0, width=width)


def zigzag_hairlines(rng, large):
    """One to three zig-zags with thin vertical bars (hairlines, the only marks narrow enough to seem one
    digit) beside them: the picture that was once read cut 11,029 ways."""
    image = _canvas(rng, large, (150, 1200), (40, 240))
    width, height = image.size
    draw = ImageDraw.Draw(image)
    top, bottom = int(rng.integers(2, height // 4)), int(rng.integers(3 * height // 4, height - 1))
    x = int(rng.integers(2, max(3, width // 10)))
    for _ in range(int(rng.integers(1, 4))):
        span = int(rng.integers(20, max(21, width - x)))
        _zigzag(draw, x, min(x + span, width - 2), top, bottom, int(rng.integers(3, 150)), int(rng.integers(1, 5)))
        x = min(x + span + int(rng.integers(2, 40)), width - 2)
        if x >= width - 20:
            break
    for _ in range(int(rng.integers(0, 10))):
        hx = int(rng.integers(0, width))
        draw.line([(hx, top + int(rng.integers(0, 10))), (hx, bottom - int(rng.integers(0, 10)))], fill=0,
                  width=int(rng.choice([1, 1, 1, 2])))
    return np.asarray(image)


def specks(rng, large):
    """Random specks (mostly 2x2), hundreds to tens of thousands, on a page, sometimes over a row of digits."""
    image = _canvas(rng, large, (80, 420), (80, 420))
    if rng.random() < 0.3:
        _blob_row(ImageDraw.Draw(image), rng, image.size, gap_range=(2, 30))
    page = np.asarray(image).copy()
    side = int(rng.choice([2, 2, 2, 1, 3, 4]))
    count = int(_log_uniform(rng, 100, max(101, min(40_000, page.size // 16))))
    ys = rng.integers(0, page.shape[0] - side + 1, count)
    xs = rng.integers(0, page.shape[1] - side + 1, count)
    for dy in range(side):
        for dx in range(side):
            page[ys + dy, xs + dx] = 0
    return page


def dot_field(rng, large):
    """A field of dots (a dot grid, a halftone) over part of a page, with one ring among them: where each
    dot is within reach of the ring or of dots already joined to it, the digit grows dot by dot."""
    width, height = (int(rng.integers(800, 2000)), int(rng.integers(800, 2000))) if large else \
        (int(rng.integers(150, 480)), int(rng.integers(150, 480)))
    page = np.full((height, width), 255, np.uint8)
    pitch, dot = int(rng.integers(4, 11)), int(rng.integers(1, 5))
    if rng.random() < 0.5:  # most of the page
        top, bottom = int(rng.integers(0, height // 8)), int(rng.integers(height // 2, height))
        left, right = int(rng.integers(0, width // 8)), int(rng.integers(7 * width // 8, width))
    else:
        top, bottom = sorted(int(y) for y in rng.integers(0, height, 2))
        left, right = sorted(int(x) for x in rng.integers(0, width, 2))
    jitter = int(rng.integers(0, 2 if rng.random() < 0.7 else pitch // 2 + 1))
    ys, xs = (grid.ravel() for grid in np.meshgrid(np.arange(top, bottom, pitch), np.arange(left, right, pitch)))
    ys, xs = ys + rng.integers(0, jitter + 1, len(ys)), xs + rng.integers(0, jitter + 1, len(xs))
    for dy in range(dot):
        for dx in range(dot):
            page[np.minimum(ys + dy, height - 1), np.minimum(xs + dx, width - 1)] = 0
    image = Image.fromarray(page)
    r, x, y = int(rng.integers(3, 60)), int(rng.integers(0, width)), int(rng.integers(0, height))
    ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=None if rng.random() < 0.5 else 255, outline=0,
                                  width=int(rng.integers(1, 5)))
    return np.asarray(image)


def strip(rng, large):
    """A long thin strip: 1xN, Nx1, N x 90 or 90 x N, holding runs of ink, blobs, zig-zags or specks."""
    length = int(rng.integers(5_000, 40_001) if large else _log_uniform(rng, 30, 6_000))
    across = int(rng.choice([1, 1, 2, 3, 90, 90, int(rng.integers(4, 120))]))
    image = Image.new("L", (length, across), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(int(_log_uniform(rng, 1, 300))):
        left = int(rng.integers(0, length))
        right = left + int(_log_uniform(rng, 1, max(2, length / 4)))
        kind = rng.integers(4)
        if kind == 0 or across < 4:
            y0, y1 = sorted(int(y) for y in rng.integers(0, across, 2))
            draw.rectangle((left, y0, right, y1), fill=0)
        elif kind == 1:
            draw.ellipse((left, 1, left + int(rng.integers(2, 2 * across)), across - 2), outline=0,
                         width=int(rng.integers(1, 6)))
        elif kind == 2:
            _zigzag(draw, left, right, 1, across - 2, int(rng.integers(2, 60)), int(rng.integers(1, 4)))
        else:
            for _ in range(int(rng.integers(1, 50))):
                sx, sy = left + int(rng.integers(0, 200)), int(rng.integers(0, across))
                draw.rectangle((sx, sy, sx + 1, sy + 1), fill=0)
    gray = np.asarray(image)
    return gray.T.copy() if rng.random() < 0.3 else gray


def tiny_marks(rng, large):
    """Many tiny marks (1-12 px), scattered or along one line, around the 7 px a digit needs."""
    image = _canvas(rng, large)
    width, height = image.size
    draw = ImageDraw.Draw(image)
    on_a_line, line_y = rng.random() < 0.5, int(rng.integers(0, height))
    for _ in range(int(_log_uniform(rng, 20, 4_000 if large else 1_500))):
        w, h = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        x = int(rng.integers(0, width))
        y = line_y + int(rng.integers(-3, 4)) if on_a_line else int(rng.integers(0, height))
        shape = rng.integers(3)
        if shape == 0:
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=0)
        elif shape == 1:
            draw.ellipse((x, y, x + w, y + h), outline=0)
        else:
            draw.line([(x, y), (x + w, y + h)], fill=0, width=1)
    return np.asarray(image)


def scribble(rng, large):
    """Dense scribbles: random walks of tens to thousands of points, one to six pixels wide."""
    image = _canvas(rng, large)
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 7))):
        steps = int(_log_uniform(rng, 10, 3_000))
        reach = _log_uniform(rng, 2, max(3, min(width, height) / 3))
        walk = np.cumsum(rng.normal(0, reach, (steps, 2)), 0) + (rng.uniform(0, width), rng.uniform(0, height))
        walk = np.clip(walk, 0, (width - 1, height - 1))
        draw.line([tuple(p) for p in walk], fill=0, width=int(rng.integers(1, 7)))
    return np.asarray(image)


def _blob_row(draw, rng, size, gap_range=(-20, 30)) -> None:
    """A row of digit-like rings and bars of one height, their gaps from GAP_RANGE (negative: touching)."""
    width, height = size
    digit = int(rng.integers(8, max(9, min(height - 2, 220))))
    top, x = int(rng.integers(0, max(1, height - digit))), int(rng.integers(0, max(1, width // 8)))
    while x < width - 4:
        w = max(1, int(digit * rng.uniform(0.05, 1.1)))
        if rng.random() < 0.2:
            draw.line([(x, top), (x, top + digit)], fill=0, width=max(1, int(digit * rng.uniform(0.02, 0.15))))
        else:
            draw.ellipse((x, top, x + w, top + digit), outline=0, width=max(1, int(digit * rng.uniform(0.03, 0.2))))
        x += max(1, w + int(rng.integers(*gap_range)))


def touching(rng, large):
    """Rows of digit-like marks, touching or apart, with hairlines and 1s: wide groups read cut many ways."""
    image = _canvas(rng, large, (150, 1600), (20, 220))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 3))):
        _blob_row(draw, rng, image.size)
    return np.asarray(image)


def noise(rng, large):
    """Uniform, salt-and-pepper or blurred noise: marks of every size, everywhere."""
    width, height = (int(rng.integers(20, 2000)), int(rng.integers(20, 2000))) if large else \
        (int(rng.integers(10, 400)), int(rng.integers(10, 400)))
    kind = rng.integers(3)
    if kind == 0:
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    if kind == 1:
        page = np.full((height, width), 255, np.uint8)
        page[rng.random((height, width)) < _log_uniform(rng, 1e-4, 0.5)] = 0
        return page
    coarse = rng.random((max(1, height // 8), max(1, width // 8)))
    blurred = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height),
                                                                                 Image.Resampling.BICUBIC))
    return np.where(blurred > rng.integers(100, 230), 255, 0).astype(np.uint8)


def random_size(rng, large):
    """A random size, from one pixel to a few megapixels (mostly small), of any aspect, holding nothing, a
    gradient, a dot grid, a checkerboard or a few shapes."""
    pixels = _log_uniform(rng, 1, 6_000_000 if large else 300_000)
    aspect = _log_uniform(rng, 1 / 200, 200)
    width = int(np.clip(round((pixels * aspect) ** 0.5), 1, 40_000))
    height = int(np.clip(round(pixels / width), 1, 40_000))
    kind = rng.integers(5)
    if kind == 0:
        return np.full((height, width), int(rng.integers(0, 256)), np.uint8)
    if kind == 1:
        return np.broadcast_to(np.linspace(0, 255, width, dtype=np.float32), (height, width)).astype(np.uint8)
    if kind in (2, 3):
        pitch, dot = int(rng.integers(2, 40)), int(rng.integers(1, 6))
        ys, xs = np.mgrid[:height, :width]
        if kind == 2:
            return np.where((ys % pitch < dot) & (xs % pitch < dot), 0, 255).astype(np.uint8)
        return np.where((ys // pitch + xs // pitch) % 2, 0, 255).astype(np.uint8)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 8))):
        box = sorted(rng.integers(0, width, 2)), sorted(rng.integers(0, height, 2))
        draw.ellipse((box[0][0], box[1][0], box[0][1], box[1][1]), outline=0, width=int(rng.integers(1, 8)))
    return np.asarray(image)


FAMILIES = {"zigzag_hairlines": zigzag_hairlines, "specks": specks, "dot_field": dot_field, "strip": strip,
            "tiny_marks": tiny_marks, "scribble": scribble, "touching": touching, "noise": noise,
            "random_size": random_size}
# How often each family is drawn; "mutated_png" takes a small picture of another family.
WEIGHTS = {"zigzag_hairlines": 0.14, "specks": 0.12, "dot_field": 0.04, "strip": 0.12, "tiny_marks": 0.1,
           "scribble": 0.1, "touching": 0.12, "noise": 0.07, "random_size": 0.08, "mutated_png": 0.15}


# --- encodings and mutations ---------------------------------------------------------------------------

def encode(gray: np.ndarray, rng) -> tuple[bytes, str]:
    """GRAY as the bytes of a grey PNG (mostly), a palette PNG (grey, shuffled or random colours, some
    entries transparent), a 1-bit, 16-bit or transparent PNG, or a JPEG; and which."""
    kind = rng.choice(["png", "png", "png", "png", "palette", "palette", "1bit", "16bit", "alpha", "jpeg"])
    image = Image.fromarray(gray)
    options = {"format": "PNG", "compress_level": 1}
    if kind == "palette":
        image = image.quantize(int(rng.choice([2, 4, 16, 256])), dither=Image.Dither.NONE) \
            if rng.random() < 0.5 else image.convert("P")
        if rng.random() < 0.3:
            image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        if rng.random() < 0.3:
            options["transparency"] = bytes(rng.choice([0, 255], 256).astype(np.uint8))
    elif kind == "1bit":
        image = image.convert("1")
    elif kind == "16bit":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    elif kind == "alpha":
        colour = Image.new("RGB", image.size, tuple(int(c) for c in rng.integers(0, 256, 3)))
        colour.putalpha(Image.fromarray(255 - gray))
        image = colour
    elif kind == "jpeg":
        options = {"format": "JPEG", "quality": int(rng.integers(5, 96))}
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue(), str(kind)


def png_chunks(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of the PNG RAW."""
    chunks, at = [], len(PNG_SIGNATURE)
    while at + 8 <= len(raw):
        length = int.from_bytes(raw[at:at + 4], "big")
        chunks.append((raw[at + 4:at + 8], raw[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of CHUNKS, each checksum computed (so that the decoder reads the edited chunk)."""
    return PNG_SIGNATURE + b"".join(len(data).to_bytes(4, "big") + kind + data +
                                    zlib.crc32(kind + data).to_bytes(4, "big") for kind, data in chunks)


def _exif_orientation(value: int) -> bytes:
    """An eXIf chunk's data: a big-endian TIFF header and one IFD entry, Orientation = VALUE."""
    return b"MM\x00*\x00\x00\x00\x08\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01" + \
        value.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"


def mutate_png(raw: bytes, rng) -> tuple[bytes, str]:
    """RAW (a PNG) with one edit: raw byte edits (checksums left wrong), or with checksums recomputed, the
    header's size, depth or colour type changed, the palette or transparency replaced, the pixel data
    edited and recompressed or cut, an EXIF orientation added, or the data split into many chunks."""
    random_ = np.random.default_rng(rng.integers(2 ** 32))
    kind = str(rng.choice(["bytes", "bytes", "header", "palette", "transparency", "pixels", "pixels",
                           "exif", "split"]))
    if kind == "bytes":
        return mutate_bytes(raw, random.Random(int(rng.integers(2 ** 32))), 128), kind
    chunks = png_chunks(raw)
    header = bytearray(chunks[0][1])
    data = b"".join(d for k, d in chunks if k == b"IDAT")
    rest = [(k, d) for k, d in chunks[1:] if k not in (b"IDAT", b"IEND")]
    if kind == "header":
        field = rng.integers(4)
        if field < 2:  # width or height
            old = int.from_bytes(header[4 * field:4 * field + 4], "big")
            new = int(rng.choice([0, 1, 2, old + 1, old - 1, old * 2, old // 2, 2 ** 31 - 1, 2 ** 16, 40_000]))
            header[4 * field:4 * field + 4] = max(new, 0).to_bytes(4, "big")
        elif field == 2:
            header[8] = int(rng.choice([1, 2, 4, 8, 16, 3]))
        else:
            header[9] = int(rng.choice([0, 2, 3, 4, 6, 5]))
    elif kind == "palette":
        rest = [(k, d) for k, d in rest if k != b"PLTE"]
        rest.insert(0, (b"PLTE", random_.integers(0, 256, 3 * int(rng.integers(1, 257)), dtype=np.uint8).tobytes()))
    elif kind == "transparency":
        rest = [(k, d) for k, d in rest if k != b"tRNS"]
        rest.append((b"tRNS", random_.integers(0, 256, int(rng.integers(1, 257)), dtype=np.uint8).tobytes()))
    elif kind == "pixels":
        try:
            pixels = zlib.decompress(data)
        except zlib.error:
            pixels = data
        pixels = mutate_bytes(pixels, random.Random(int(rng.integers(2 ** 32))), len(pixels))
        data = zlib.compress(pixels, 1)
        if rng.random() < 0.2:
            data = data[:int(rng.integers(0, len(data) + 1))]
    elif kind == "exif":
        rest.append((b"eXIf", _exif_orientation(int(rng.integers(1, 9)))))
    else:
        step = max(1, len(data) // int(rng.integers(2, 200)))
        return png_bytes([(b"IHDR", bytes(header)), *rest, *[(b"IDAT", data[i:i + step])
                                                            for i in range(0, len(data), step)], (b"IEND", b"")]), kind
    return png_bytes([(b"IHDR", bytes(header)), *rest, (b"IDAT", data), (b"IEND", b"")]), kind


def work_case(seed: int, index: int) -> WorkCase:
    """Case INDEX of the run seeded SEED, drawn from its own generator."""
    rng = np.random.default_rng((seed, index))
    family = str(rng.choice(list(WEIGHTS), p=np.array(list(WEIGHTS.values())) / sum(WEIGHTS.values())))
    large = family != "mutated_png" and rng.random() < LARGE_SHARE
    drawn = str(rng.choice(list(FAMILIES))) if family == "mutated_png" else family
    gray = FAMILIES[drawn](rng, large)
    payload, encoding = encode(gray, rng)
    if family == "mutated_png":
        while not payload.startswith(PNG_SIGNATURE):
            payload, encoding = encode(gray, rng)
        payload, change = mutate_png(payload, rng)
        encoding = f"{encoding} {drawn} {change}"
    return WorkCase(index, family, encoding, (gray.shape[1], gray.shape[0]), payload)


# --- the work -------------------------------------------------------------------------------------------

class ForwardCost:
    """The CPU seconds of FORWARD_MODEL's forward pass on N inputs, measured once per N (the least of
    three runs: the cost does not depend on the pixels)."""

    def __init__(self):
        import torch

        from lenet.models import build_model
        torch.set_num_threads(1)
        self.model = build_model(FORWARD_MODEL).eval()
        self.seconds: dict[int, float] = {}
        self(1)

    def __call__(self, count: int) -> float:
        if count not in self.seconds:
            import torch

            from lenet.inference import batched_logits
            inputs = torch.zeros(count, 28, 28)
            runs = []
            for _ in range(3):
                start = time.process_time()
                batched_logits(self.model, inputs)
                runs.append(time.process_time() - start)
            self.seconds[count] = min(runs)
        return self.seconds[count]


def _read(path: str, payload: bytes, name: str) -> np.ndarray:
    """The float32 (N, 28, 28) network inputs PATH makes of PAYLOAD."""
    from lenet.pictures.inputs import image_to_input
    from lenet.pictures.numbers import image_to_number_inputs
    if path == "number":
        return image_to_number_inputs(payload, name).inputs
    return image_to_input(payload, name)[None]


class WorkFigures:
    """Per reading (a case read by one path): its outcome, inputs and seconds; summed up by result()."""

    def __init__(self, forward: ForwardCost):
        self.forward = forward
        self.rows: list[tuple[str, str, float, int]] = []  # (path, family, seconds, inputs)
        self.counts = {"refused": 0, "multi_line_refusals": 0, "tracebacks": 0, "hangs": 0, "wrong_answers": 0}
        self.by = {path: {"refused": 0, "tracebacks": 0, "hangs": 0, "wrong_answers": 0} for path in PATHS}
        self.examples: list[str] = []
        self.slowest: list[dict] = []

    def read(self, case: WorkCase, path: str) -> None:
        name = f"case-{case.index}.png"
        start = time.process_time()
        outcome, inputs = "read", 0
        try:
            with time_limit(WORK_CASE_LIMIT_S):
                try:
                    made = _read(path, case.payload, name)
                    inputs = len(made)
                except LenetError as error:
                    outcome = f"refused: {error}"
                    self._count("refused", path)
                    if "\n" in str(error):
                        self.counts["multi_line_refusals"] += 1
                        self._example(f"{path} {case.family} case {case.index}: a refusal of several lines")
        except Hang:
            outcome = f"over {WORK_CASE_LIMIT_S} s"
            self._count("hangs", path)
            self._example(f"{path} {case.family} case {case.index} ({case.encoding}): {outcome}")
        except Exception as error:  # noqa: BLE001 -- counting exactly these is the point
            where = traceback.extract_tb(error.__traceback__)[-1]
            outcome = f"{type(error).__name__}: {error}"[:200]
            self._count("tracebacks", path)
            self._example(f"{path} {case.family} case {case.index} ({case.encoding}): {outcome} "
                          f"({where.filename.split('/')[-1]}:{where.lineno})")
        seconds = time.process_time() - start + (self.forward(inputs) if inputs else 0.0)
        wrong = check_inputs(made) if inputs else None
        if wrong:
            outcome = wrong
            self._count("wrong_answers", path)
            self._example(f"{path} {case.family} case {case.index} ({case.encoding}): {wrong}")
        self.rows.append((path, case.family, seconds, inputs))
        self._keep_slowest({"path": path, "family": case.family, "case": case.index, "encoding": case.encoding,
                            "size": list(case.size), "seconds": round(seconds, 3), "inputs": inputs,
                            "outcome": outcome[:160]})

    def _count(self, kind: str, path: str) -> None:
        self.counts[kind] += 1
        self.by[path][kind] += 1

    def _example(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text[:400])

    def _keep_slowest(self, row: dict) -> None:
        if len(self.slowest) < 10 or row["seconds"] > self.slowest[-1]["seconds"]:
            self.slowest = sorted(self.slowest + [row], key=lambda r: -r["seconds"])[:10]

    def result(self, cases: int) -> dict:
        def summary(rows) -> dict:
            seconds = np.array([r[2] for r in rows]) if rows else np.zeros(1)
            return {"readings": len(rows), "max_inputs": max((r[3] for r in rows), default=0),
                    "mean_seconds": round(float(seconds.mean()), 4), "max_seconds": round(float(seconds.max()), 3),
                    "p99_seconds": round(float(np.percentile(seconds, 99)), 3),
                    "over_bound": int((seconds > WORK_BOUND_S).sum())}
        return {"cases": cases, **self.counts, **summary(self.rows), "bound_s": WORK_BOUND_S,
                "by_path": {p: {**self.by[p], **summary([r for r in self.rows if r[0] == p])} for p in PATHS},
                "by_family": {f: summary([r for r in self.rows if r[1] == f]) for f in WEIGHTS},
                "forward_seconds": {"model": FORWARD_MODEL, **{str(n): round(self.forward(n), 4) for n in
                                                               sorted({1, max((r[3] for r in self.rows), default=1)})}},
                "slowest": self.slowest, "examples": self.examples}


def fuzz_work(cases: int, seed: int) -> dict:
    """CASES generated pictures of SEED, each read by both paths: the inputs and CPU seconds each took.
    Figures are per reading (a case read one way): refused (a LenetError), tracebacks (any other
    exception), hangs (over WORK_CASE_LIMIT_S), max inputs, max and 99th-percentile seconds, and the
    readings over WORK_BOUND_S; by path and by family; the ten slowest, to be rebuilt with work_case."""
    figures = WorkFigures(ForwardCost())
    for index in range(cases):
        case = work_case(seed, index)
        for path in PATHS:
            figures.read(case, path)
    return figures.result(cases)
