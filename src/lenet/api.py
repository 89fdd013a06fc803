"""Classifier: the CLI's train / eval / predict as one object, in the spirit of seed 004's Estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import load_model
from .data import Mnist, load_mnist
from .evaluation import evaluate_checkpoint
from .plots import plot_model_dir
from .predict import predict_probabilities
from .preprocess import array_to_inputs
from .training import Execution, resolve_recipe, train


class Classifier:
    """A recogniser living in MODEL_DIR: fit() trains or resumes, evaluate() scores, predict() classifies.

    >>> clf = Classifier(recipe="tutorial-cnn", model_dir="runs/cnn", total_steps=600)
    >>> clf.fit()["test_accuracy"]
    """

    def __init__(self, recipe: str | None = None, model_dir: str | Path = "runs/default",
                 data_dir: str | Path | None = None, device: str = "cpu", **overrides):
        self.model_dir = Path(model_dir)
        self.recipe = resolve_recipe(self.model_dir, recipe, **overrides)
        self.data_dir, self.device = data_dir, device
        self._data: Mnist | None = None

    @property
    def data(self) -> Mnist:
        if self._data is None:
            self._data = load_mnist(self.data_dir)
        return self._data

    def fit(self, report: Callable[[dict], None] | None = None, tensorboard: bool = True,
            execution: Execution = Execution()) -> dict:
        """Train to the recipe's total_steps (resuming from the newest checkpoint); returns final metrics."""
        return train(self.recipe, self.model_dir, self.data, self.device, report, tensorboard=tensorboard,
                     execution=execution)

    def evaluate(self, split: str = "test", top_k: int = 5, tensorboard: bool = True) -> dict:
        """Loss, accuracy, top-k, per-class precision/recall and confusion of the newest checkpoint."""
        return evaluate_checkpoint(self.model_dir, self.data, split, device=self.device, top_k=top_k,
                                   tensorboard=tensorboard)

    def plot(self, out_dir: str | Path | None = None, image: str | Path | None = None) -> list[Path]:
        """The `lenet plot` pictures as PNG files (default MODEL_DIR/plots); returns their paths."""
        return plot_model_dir(self.model_dir, self.data, out_dir, image, self.device)[0]

    def predict(self, images: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Classes (N,) and probabilities (N, 10) for MNIST-form images: (28, 28), (N, 28, 28) or (N, 784),
        uint8 0..255 or float 0..1. Use lenet.preprocess.image_to_input for arbitrary pictures."""
        inputs = array_to_inputs(np.asarray(images), "images")
        model, _ = load_model(self.model_dir, self.device)  # the newest checkpoint, even if fit() ran since
        probabilities = predict_probabilities(model, inputs).numpy()
        return probabilities.argmax(1), probabilities
