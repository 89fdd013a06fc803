"""Image file bytes -> a float (H, W) grey picture in [0, 1], refusing images over MAX_IMAGE_PIXELS
(a decompression bomb) before they are decoded; and the check that an array is such a picture.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageTooLarge, LenetError

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: larger images are refused, not decoded


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


def check_gray(gray: np.ndarray, name: str) -> None:
    """Refuse GRAY (from NAME) unless it is a picture as decode_image gives one: 2-D, not empty, finite."""
    if gray.ndim != 2 or gray.size == 0:
        raise LenetError(f"{name}: expected a 2-D image, got shape {gray.shape}")
    if not np.isfinite(gray).all():
        raise LenetError(f"{name}: image contains NaN or infinite values")
