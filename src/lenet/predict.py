"""Classify images, .npy arrays and IDX files with a trained network."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .checkpoint import load_model
from .errors import LenetError
from .evaluation import batched_logits
from .export import OnnxPredictor, is_onnx_file
from .preprocess import read_inputs


def predict_probabilities(model: nn.Module, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (N, 10) for float (N, 28, 28) inputs in [0, 1]."""
    images = torch.as_tensor(inputs, dtype=torch.float32).reshape(-1, 1, 28, 28)
    return torch.softmax(batched_logits(model, images).float(), dim=1).cpu()


def top_k(probabilities: torch.Tensor, k: int) -> list[list[tuple[int, float]]]:
    """The K most likely (class, probability) pairs of each row."""
    values, classes = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    return [[(int(c), float(v)) for c, v in zip(row_c, row_v)] for row_c, row_v in zip(classes, values)]


Predictor = Callable[[np.ndarray], torch.Tensor]  # float (N, 28, 28) in [0, 1] -> probabilities (N, 10)


def load_predictor(source: str | Path, device: str | torch.device = "cpu") -> tuple[Predictor, dict]:
    """A model directory's newest checkpoint, or an exported .onnx file, as (predictor, description)."""
    if is_onnx_file(source):
        predictor = OnnxPredictor(source)
        return predictor, predictor.metadata
    model, metadata = load_model(source, device)
    return (lambda inputs: predict_probabilities(model, inputs)), metadata


def predict_files(predict: Predictor, paths: Iterable[str | Path], k: int = 3) -> Iterator[dict]:
    """One result per image: {"file", "index", "class", "probabilities", "top_k"}, or {"file", "error"}.

    PREDICT comes from load_predictor. "index" is the position inside a multi-image file (.npy,
    IDX) and None for a single image. A file that cannot be read yields one error result; the
    others are still predicted.
    """
    for path in paths:
        try:
            inputs, is_array = read_inputs(path)
        except LenetError as error:
            yield {"file": str(path), "error": str(error)}
            continue
        probabilities = predict(inputs)
        for index, (row, best) in enumerate(zip(probabilities, top_k(probabilities, k))):
            yield {"file": str(path), "index": index if is_array else None, "class": best[0][0],
                   "probabilities": [round(float(p), 6) for p in row], "top_k": best}

