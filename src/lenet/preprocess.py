"""Any image or array -> the normalized 28x28 input the networks were trained on (shared by predict and serve).

How a picture is normalized depends on the data set the model learnt (`normalize_picture` picks):
a picture of clothes as Fashion-MNIST's were made (`normalize_item`), anything else as a digit.
A picture of a digit is read in two stages. Finding the ink (`find_ink`): the paper's shading is fitted and
taken away, the ink's side (dark or light) and its threshold are chosen from the picture's own
noise, and the marks are split into connected components, so that specks and ruled lines can be
dropped and a number split into digits. Then MNIST's own normalization (LeCun et al.): strokes
brought to MNIST's thickness, the digit scaled so its longer side is 20 px with the aspect ratio
kept, placed in a 28x28 field with its centre of mass at the centre.

numpy and Pillow only: `lenet predict --model x.onnx` starts in about 0.3 s, and importing
scipy.ndimage alone would add about 0.25 s to that.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .datasets import reads_digits
from .errors import ImageTooLarge, LenetError
from .files import read_file_bytes
from .idx import gunzip_if_needed, is_idx, parse_idx, parse_npy
from .ink import Ink, Mark, dilate, find_ink, stroke_width

DIGIT_BOX = 20
FIELD = 28
# Where MNIST puts a digit's centre of mass: row and column 14.0 counted from 0 (the mean over its test
# digits, 13.99 and 14.01, each within half a pixel of it), not the field's geometric centre 13.5.
# Aiming at 13.5 moved three in four clean MNIST digits by a pixel, costing about 0.3 points of accuracy.
MNIST_CENTRE = 14.0
MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: larger images are refused, not decoded
INK_THRESHOLD = 0.1  # the digit's box holds the ink above this
# MNIST's strokes, measured on its test digits in the 28x28 field (twice the area over the edge pixels
# of the pixels above 0.5): median 2.66 px, 5th percentile 2.05 px. Thinner ones are thickened to the median.
MNIST_STROKE_PX = 2.66
THIN_STROKE_PX = 2.0
# A mark joins the digit when it holds at least this share of the main mark's ink and lies within this
# share of the digit's size from the digit's box (a 5's bar, a broken stroke); specks farther off are dropped.
PART_MASS = 0.02
PART_GAP = 0.15
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
# Fashion-MNIST's making (Xiao et al. 2017, "Fashion-MNIST: a Novel Image Dataset..."): edges within
# 5% of the maximum intensity of the corner pixels' colour are trimmed, the longest side is resized
# to 28 px, the shorter one padded to 28 with the item centred, the intensities negated.
ITEM_TRIM_TOLERANCE = 0.05


def decode_image(payload: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/BMP/GIF/... bytes to a float (H, W) ink map in [0, 1] (not yet normalized).

    Images with transparency use the opacity as the ink, so strokes on a transparent canvas
    work whatever their colour.
    """
    if not payload:
        raise LenetError(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(payload)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"{name}: image is {width}x{height}, over the limit of {max_pixels} pixels")
            if width <= 0 or height <= 0:
                raise LenetError(f"{name}: image is {width}x{height}, no pixels")
            image = ImageOps.exif_transpose(image)
            image.load()  # decode now so truncated data fails here
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            if has_alpha:
                alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
                if alpha.min() < 0.99:
                    return alpha
            return _grey_levels(image, name)
    except LenetError:
        raise
    except UnidentifiedImageError:
        raise LenetError(f"{name}: not a recognised image format") from None
    except Image.DecompressionBombError:  # Pillow's own guard, for images far over any limit
        raise ImageTooLarge(f"{name}: image is over the limit of {max_pixels} pixels") from None
    # Pillow's decoders raise whatever their parsing runs into on crafted bytes (NotImplementedError for
    # a DDS pixel format, AttributeError in SPIDER's reader, struct.error, IndexError, ...): any failure
    # to decode a user's file is the file's, and must not stop the next file from being read.
    except Exception as error:
        raise LenetError(f"{name}: cannot decode image ({type(error).__name__}: {error})"[:300]) from None


# The full scales a 32-bit integer or float picture's values may be on: 8-bit, 16-bit or 32-bit levels.
_LEVEL_SCALES = (255, 65_535, 2 ** 32 - 1)


def _grey_levels(image: Image.Image, name: str) -> np.ndarray:
    """IMAGE's grey levels as float32 in [0, 1], whatever its mode. Pillow's conversion to L clips 16-bit,
    32-bit and float values at 255, making a 16-bit scan all white: those are scaled instead."""
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65_535.0
    if image.mode in ("I", "F"):
        # No depth is recorded: a float picture up to 1 is taken as [0, 1], anything else by the
        # smallest full scale that holds its brightest pixel.
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise LenetError(f"{name}: image contains NaN or infinite values")
        top = float(values.max())
        scale = 1.0 if image.mode == "F" and top <= 1.0 else next((s for s in _LEVEL_SCALES if top <= s), top)
        return np.clip(values / scale, 0.0, 1.0).astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _check_gray(gray: np.ndarray, name: str) -> None:
    if gray.ndim != 2 or gray.size == 0:
        raise LenetError(f"{name}: expected a 2-D image, got shape {gray.shape}")
    if not np.isfinite(gray).all():
        raise LenetError(f"{name}: image contains NaN or infinite values")


def normalize_digit(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A float (H, W) grey picture of one digit in [0, 1] -> float32 (28, 28), white digit on black, MNIST-style."""
    _check_gray(gray, name)
    ink = find_ink(gray, name)
    mask = ink.mask(_digit_marks(ink, name))
    return _mnist_field(_digit_ink(ink, mask, stroke_width(mask)), name)


def normalize_item(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A float (H, W) grey picture of one item (a garment, a shoe, a bag) in [0, 1] -> float32 (28, 28),
    light item on black, as Fashion-MNIST was made (see ITEM_TRIM_TOLERANCE): no 20-px box and no
    centre of mass, which are MNIST's."""
    _check_gray(gray, name)
    corners = np.array([gray[0, 0], gray[0, -1], gray[-1, 0], gray[-1, -1]])
    background = float(np.median(corners))
    item = np.abs(gray - background) > ITEM_TRIM_TOLERANCE
    rows, cols = np.flatnonzero(item.any(1)), np.flatnonzero(item.any(0))
    if len(rows) == 0:
        raise LenetError(f"{name}: no item found (the picture is all its background colour)")
    crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    # Negated when the background is light (a product photo on white, as Fashion-MNIST's were), and
    # the background level taken away: an off-white or grey backdrop still becomes the black the
    # network saw. A dark background (a transparent picture's opacity, say) is kept as it is.
    if background >= 0.5:
        crop, background = 1.0 - crop, 1.0 - background
    crop = np.clip((crop - background) / max(1.0 - background, 1e-6), 0.0, 1.0)
    height, width = crop.shape
    scale = FIELD / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Lanczos keeps edges crisp, as Fashion-MNIST's subsampling followed by sharpening did.
    resized = np.clip(np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS)), 0.0, 1.0)
    # Centred; an odd spare pixel goes above and to the left, where Fashion-MNIST's images have it.
    return _place(resized, (FIELD - size[1] + 1) // 2, (FIELD - size[0] + 1) // 2)


def normalize_picture(gray: np.ndarray, dataset: str, name: str = "image") -> np.ndarray:
    """A grey picture -> the network input of a model of DATASET: the one place the procedure is chosen.
    Clothes as Fashion-MNIST; MNIST, and any IDX set, as MNIST's digits (EMNIST and KMNIST, the IDX
    sets people bring, were made by MNIST's procedure)."""
    return normalize_item(gray, name) if dataset == "fashion-mnist" else normalize_digit(gray, name)


def check_reads_numbers(dataset: str, source: object) -> None:
    """Refuse to read a number with a model (SOURCE) whose classes are not the digits."""
    if not reads_digits(dataset):
        raise LenetError(f"{source}: a model of {dataset}, not of digits; reading numbers needs an MNIST model")


def _digit_marks(ink: Ink, name: str) -> list[Mark]:
    """The marks of the one digit in a picture: the one with the most ink and the parts near it."""
    marks = [m for m in ink.marks if not m.is_line]
    if not marks:
        raise LenetError(f"{name}: no digit found, only lines running across the picture")
    # A bar (a piece of a ruled line) can outweigh a thin or faint digit, but is never the digit
    # itself: it may only join one as a part (a 5's or a 7's bar).
    main = max([m for m in marks if not m.is_bar] or marks, key=lambda m: m.mass)
    chosen, box = [main], _box(main)
    grew = True
    while grew:  # a part joined widens the box, which may bring the next part within reach
        grew = False
        for m in marks:
            if (m not in chosen and m.mass >= PART_MASS * main.mass
                    and _gap(box, m) <= PART_GAP * max(box[2] - box[0], box[3] - box[1])):
                chosen.append(m)
                box = _union(box, _box(m))
                grew = True
    return chosen


def _box(mark: Mark) -> tuple[int, int, int, int]:
    return mark.top, mark.left, mark.bottom, mark.right


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _gap(box: tuple[int, int, int, int], mark: Mark) -> int:
    """Pixels between BOX and MARK's box along the axis where they are farther apart (0 if they overlap)."""
    top, left, bottom, right = box
    return max(mark.top - bottom, top - mark.bottom, mark.left - right, left - mark.right, 0)


def _digit_ink(ink: Ink, mask: np.ndarray, stroke_px: float) -> np.ndarray:
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


def _mnist_field(ink: np.ndarray, name: str) -> np.ndarray:
    """MNIST's steps for an ink map: crop to the ink, longer side to 20 px keeping the aspect ratio,
    centre of mass where MNIST's are in the 28x28 field."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(0))
    if len(rows) == 0:
        raise LenetError(f"{name}: no ink found (the image is blank or has too little contrast)")
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    height, width = ink.shape
    if max(height, width) == DIGIT_BOX:
        # Already MNIST's size (an MNIST image, say): resampling would only blur it.
        centre_y, centre_x = _centre_of_mass(ink)
        return _place(ink, round(MNIST_CENTRE - centre_y), round(MNIST_CENTRE - centre_x))
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
    return _place(np.clip(np.asarray(box), 0.0, 1.0), math.floor(top), math.floor(left))


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    total = float(ink.sum())
    return float(ink.sum(1) @ np.arange(ink.shape[0])) / total, float(ink.sum(0) @ np.arange(ink.shape[1])) / total


def _place(box: np.ndarray, top: int, left: int) -> np.ndarray:
    """BOX in a black 28x28 field with its top left corner at (TOP, LEFT), moved as little as needed
    to stay inside."""
    box = box[:FIELD, :FIELD]
    top = int(np.clip(top, 0, FIELD - box.shape[0]))
    left = int(np.clip(left, 0, FIELD - box.shape[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return field


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
    _check_gray(gray, name)
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
                inputs.append(_mnist_field(_digit_ink(ink, piece, stroke_px), name))
                boxes.append((round(cols[0] * x_scale), round(rows[0] * y_scale),
                              round((cols[-1] + 1 - cols[0]) * x_scale), round((rows[-1] + 1 - rows[0]) * y_scale)))
            ways[-1].append(tuple(indices))
    return NumberInputs(np.stack(inputs), boxes, ways)


def _x_overlap(mark: Mark, box: tuple[int, int, int, int]) -> int:
    return min(mark.right, box[3]) - max(mark.left, box[1])


def _x_gap(mark: Mark, box: tuple[int, int, int, int]) -> int:
    return max(mark.left - box[3], box[1] - mark.right, 0)


def _group_box(group: list[Mark]) -> tuple[int, int, int, int]:
    box = _box(group[0])
    for m in group[1:]:
        box = _union(box, _box(m))
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


def image_to_input(payload: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS, dataset: str = "mnist") -> np.ndarray:
    """Image file bytes -> float32 (28, 28) input of a model of DATASET (see normalize_picture)."""
    return normalize_picture(decode_image(payload, name, max_pixels), dataset, name)


def array_to_inputs(array: np.ndarray, name: str) -> np.ndarray:
    """An array already in MNIST form -> float32 (N, 28, 28) in [0, 1].

    Accepts (28, 28), (N, 28, 28) or (N, 784); uint8 is scaled by 1/255, other numbers must lie in [0, 1].
    """
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        original_dtype = array.dtype
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes inf, refused just below
            array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise LenetError(f"{name}: array contains NaN or infinite values")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            hint = (f"; for pixel values 0..255 use a uint8 array, not {original_dtype}"
                    if np.issubdtype(original_dtype, np.integer) and array.max() > 1.0 else "")
            raise LenetError(f"{name}: values must lie in [0, 1] (got {array.min():g}..{array.max():g}){hint}")
    else:
        raise LenetError(f"{name}: unsupported array dtype {array.dtype}")
    if array.shape == (FIELD, FIELD):
        array = array[None]
    elif array.ndim == 2 and array.shape[1] == FIELD * FIELD:
        array = array.reshape(-1, FIELD, FIELD)
    if array.ndim != 3 or array.shape[1:] != (FIELD, FIELD) or len(array) == 0:
        raise LenetError(f"{name}: expected shape (28, 28), (N, 28, 28) or (N, 784), got {array.shape}")
    return np.ascontiguousarray(array)


def read_inputs(path: str | Path, dataset: str = "mnist") -> tuple[np.ndarray, bool]:
    """A file -> (float32 (N, 28, 28), whether it held an array of images rather than one picture).

    .npy arrays and IDX files are taken as images already in the data set's form; pictures are
    normalized for a model of DATASET.
    """
    return inputs_from_bytes(read_file_bytes(path), str(path), dataset)


def inputs_from_bytes(payload: bytes, name: str, dataset: str = "mnist") -> tuple[np.ndarray, bool]:
    """A file's bytes, NAME its path -> what read_inputs returns."""
    if Path(name).suffix.lower() == ".npy":
        return array_to_inputs(parse_npy(payload, name), name), True
    # An IDX file by its magic number and length (gzip is no picture format, so a .gz is taken for IDX);
    # a file named as IDX is parsed as one, so that a damaged one says what is wrong with it.
    if is_idx(payload) or payload[:2] == b"\x1f\x8b" or "idx" in Path(name).name.lower():
        return array_to_inputs(parse_idx(gunzip_if_needed(payload, name), name), name), True
    return image_to_input(payload, name, dataset=dataset)[None], False

