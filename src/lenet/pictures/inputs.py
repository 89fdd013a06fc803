"""What a file or its bytes hold -> the float32 (N, 28, 28) inputs of a model: arrays checked, IDX and
.npy files told from pictures, and a picture normalized as the model's data set was made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets import reads_digits
from ..errors import LenetError
from ..files import read_file_bytes
from ..idx import gunzip_if_needed, is_idx, parse_idx, parse_npy
from .clothes import normalize_item
from .decode import MAX_IMAGE_PIXELS, decode_image
from .digits import FIELD, normalize_digit


def normalize_picture(gray: np.ndarray, dataset: str, name: str = "image") -> np.ndarray:
    """A grey picture -> the network input of a model of DATASET: the one place the procedure is chosen.
    Clothes as Fashion-MNIST; MNIST, and any IDX set, as MNIST's digits (EMNIST and KMNIST, the IDX
    sets people bring, were made by MNIST's procedure)."""
    return normalize_item(gray, name) if dataset == "fashion-mnist" else normalize_digit(gray, name)


def check_reads_numbers(dataset: str, source: object) -> None:
    """Refuse to read a number with a model (SOURCE) whose classes are not the digits."""
    if not reads_digits(dataset):
        raise LenetError(f"{source}: a model of {dataset}, not of digits; reading numbers needs an MNIST model")


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
