"""A grey picture of one item (a garment, a shoe, a bag) -> Fashion-MNIST's 28x28 input, made as
Fashion-MNIST's were (Xiao et al. 2017).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import LenetError
from .decode import check_gray
from .digits import FIELD, place_in_field

# Fashion-MNIST's making (Xiao et al. 2017, "Fashion-MNIST: a Novel Image Dataset..."): edges within
# 5% of the maximum intensity of the corner pixels' colour are trimmed, the longest side is resized
# to 28 px, the shorter one padded to 28 with the item centred, the intensities negated.
ITEM_TRIM_TOLERANCE = 0.05


def normalize_item(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """A float (H, W) grey picture of one item (a garment, a shoe, a bag) in [0, 1] -> float32 (28, 28),
    light item on black, as Fashion-MNIST was made (see ITEM_TRIM_TOLERANCE): no 20-px box and no
    centre of mass, which are MNIST's."""
    check_gray(gray, name)
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
    return place_in_field(resized, (FIELD - size[1] + 1) // 2, (FIELD - size[0] + 1) // 2)
