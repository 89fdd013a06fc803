"""Classify images, .npy arrays and IDX files with a trained model (see inference.open_model)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import LenetError
from .inference import LoadedModel, check_top_k
from .preprocess import read_inputs


def top_k(probabilities: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """The K most likely (class, probability) pairs of each row, most likely first."""
    check_top_k(k)
    probabilities = np.asarray(probabilities)
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(int(c), float(row[c])) for c in classes] for row, classes in zip(probabilities, ranked)]


def check_finite(probabilities: np.ndarray, name: str) -> np.ndarray:
    """PROBABILITIES, refused when the model gave NaN or infinite outputs (damaged weights)."""
    if not np.isfinite(probabilities).all():
        raise LenetError(f"{name}: the model's outputs hold NaN or infinite values (damaged weights?)")
    return probabilities


def predict_files(model: LoadedModel, paths: Iterable[str | Path], k: int = 3) -> Iterator[dict]:
    """One result per image: {"file", "index", "class", "probabilities", "top_k"}, or {"file", "error"}.

    MODEL comes from inference.open_model. "index" is the position inside a multi-image file (.npy,
    IDX) and None for a single image. A file that cannot be read yields one error result; the
    others are still predicted.
    """
    check_top_k(k)
    for path in paths:
        try:
            inputs, is_array = read_inputs(path)
            probabilities = check_finite(model.probabilities(inputs), str(path))
        except LenetError as error:
            yield {"file": str(path), "error": str(error)}
            continue
        for index, (row, best) in enumerate(zip(probabilities, top_k(probabilities, k))):
            yield {"file": str(path), "index": index if is_array else None, "class": best[0][0],
                   "probabilities": [round(float(p), 6) for p in row], "top_k": best}
