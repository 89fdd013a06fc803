"""Any image or array -> the normalized 28x28 input the networks were trained on (shared by predict and serve).

MNIST's own normalization (LeCun et al.): white ink on black, the digit scaled so its longer
side is 20 px with the aspect ratio kept, then placed in a 28x28 field so that its centre of
mass sits at the centre.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, LenetError
from .idx import gunzip_if_needed, parse_idx

DIGIT_BOX = 20
FIELD = 28
MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: larger images are refused, not decoded
# Ink must stand out from the background by this much (on a 0..1 scale) to count as a digit.
MIN_CONTRAST = 0.15
INK_THRESHOLD = 0.1


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
            image = ImageOps.exif_transpose(image)
            image.load()  # decode now so truncated data fails here
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            if has_alpha:
                alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
                if alpha.min() < 0.99:
                    return alpha
            return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except LenetError:
        raise
    except UnidentifiedImageError:
        raise LenetError(f"{name}: not a recognised image format") from None
    except Image.DecompressionBombError:  # Pillow's own guard, for images far over any limit
        raise ImageTooLarge(f"{name}: image is over the limit of {max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise LenetError(f"{name}: cannot decode image ({error})") from None


def normalize_digit(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A float (H, W) grey image in [0, 1] -> float32 (28, 28), white digit on black, MNIST-style."""
    if gray.ndim != 2 or gray.size == 0:
        raise LenetError(f"{name}: expected a 2-D image, got shape {gray.shape}")
    if not np.isfinite(gray).all():
        raise LenetError(f"{name}: image contains NaN or infinite values")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on light paper: MNIST is the other way round
        gray, background = 1.0 - gray, 1.0 - background
    peak = float(gray.max())
    if peak - background < MIN_CONTRAST:
        raise LenetError(f"{name}: no ink found (the image is blank or has too little contrast)")
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)

    rows = np.flatnonzero((ink > INK_THRESHOLD).any(1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    box = np.clip(box, 0.0, 1.0)

    # Shift so the centre of mass lands on the field's centre (13.5, 13.5), staying inside the field.
    total = box.sum()
    ys, xs = np.indices(box.shape)
    centre_y, centre_x = (ys * box).sum() / total, (xs * box).sum() / total
    top = int(np.clip(round(13.5 - centre_y), 0, FIELD - box.shape[0]))
    left = int(np.clip(round(13.5 - centre_x), 0, FIELD - box.shape[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return field


def image_to_input(payload: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Image file bytes -> float32 (28, 28) network input."""
    return normalize_digit(decode_image(payload, name, max_pixels), name)


def array_to_inputs(array: np.ndarray, name: str) -> np.ndarray:
    """An array already in MNIST form -> float32 (N, 28, 28) in [0, 1].

    Accepts (28, 28), (N, 28, 28) or (N, 784); uint8 is scaled by 1/255, other numbers must lie in [0, 1].
    """
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        original_dtype = array.dtype
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


def read_inputs(path: str | Path) -> tuple[np.ndarray, bool]:
    """A file -> (float32 (N, 28, 28), whether it held an array of images rather than one picture).

    .npy arrays and IDX files are taken as MNIST-form images; pictures are normalized.
    """
    path = Path(path)
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(io.BytesIO(payload), allow_pickle=False)  # never unpickle user files
        except (ValueError, OSError, EOFError) as error:
            raise LenetError(f"{path}: not a valid .npy array ({error})") from None
        return array_to_inputs(array, str(path)), True
    if payload[:2] == b"\x00\x00" or "idx" in path.name.lower():
        return array_to_inputs(parse_idx(gunzip_if_needed(payload, str(path)), str(path)), str(path)), True
    return image_to_input(payload, str(path))[None], False

