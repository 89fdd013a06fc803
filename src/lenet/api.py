"""Classifier: the CLI's train / eval / predict as one object, in the spirit of seed 004's Estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import resolve_recipe
from .data import Dataset, load_dataset
from .evaluation import evaluate_model
from .execution import Execution, resolve_device
from .files import read_file_bytes
from .inference import check_top_k, open_model
from .plots import plot_model_dir
from .predict import model_threshold, predict_bytes, predictions_from, read_number
from .pictures.inputs import array_to_inputs
from .results import Evaluation, NumberReading, Prediction
from .training import train


class Classifier:
    """A recogniser living in MODEL_DIR: fit() trains or resumes, evaluate() scores, predict() classifies.

    Every method calls the function the matching `lenet` command calls, so both refuse the same things.

    >>> clf = Classifier(recipe="tutorial-cnn", model_dir="runs/cnn", total_steps=600)
    >>> clf.fit()["test_accuracy"]
    """

    def __init__(self, recipe: str | None = None, model_dir: str | Path = "runs/default",
                 data_dir: str | Path | None = None, device: str = "cpu", precision: str = "auto", **overrides):
        self.model_dir = Path(model_dir)
        self.precision = precision  # of evaluate(), predict() and read(): see inference.open_model
        self.recipe = resolve_recipe(self.model_dir, recipe, **overrides)
        self.device = resolve_device(device)
        self.data_dir = data_dir
        self._data: Dataset | None = None

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.recipe.dataset, self.data_dir)
        return self._data

    def fit(self, report: Callable[[dict], None] | None = None, tensorboard: bool = True,
            execution: Execution = Execution()) -> dict:
        """Train to the recipe's total_steps (resuming from the newest checkpoint); returns final metrics."""
        return train(self.recipe, self.model_dir, self.data, self.device, report, tensorboard=tensorboard,
                     execution=execution)

    def evaluate(self, split: str = "test", top_k: int = 5, tensorboard: bool = True, tta: bool = False) -> Evaluation:
        """Loss, accuracy, top-k, per-class precision/recall and confusion of the newest checkpoint."""
        model = open_model(self.model_dir, self.device, precision=self.precision)
        return evaluate_model(model, self.data, split, top_k, tensorboard, tta=tta)

    def plot(self, out_dir: str | Path | None = None, image: str | Path | None = None) -> list[Path]:
        """The `lenet plot` pictures as PNG files (default MODEL_DIR/plots); returns their paths."""
        return plot_model_dir(self.model_dir, self.data, out_dir, image, self.device)[0]

    def predict(self, images: np.ndarray | torch.Tensor | str | Path | bytes, top_k: int = 3,
                min_confidence: float | None = None) -> list[Prediction]:
        """One Prediction per input, as `lenet predict` gives them: its .class_ and .label (None when
        declined), .verdict ("digit", or why not: "not a digit", "unsure", "no ink", "several digits"),
        .confidence and .probabilities (calibrated). IMAGES are arrays in the data set's form ((28, 28),
        (N, 28, 28) or (N, 784), uint8 0..255 or float 0..1) or one picture (a file's path or its bytes),
        normalized as `lenet predict` normalizes it. MIN_CONFIDENCE: see `lenet predict --min-confidence`
        (the model's own by default)."""
        # The newest checkpoint, even if fit() ran since.
        model = open_model(self.model_dir, self.device, precision=self.precision)
        k = check_top_k(top_k, model.num_classes)
        threshold = model_threshold(model, min_confidence)
        if isinstance(images, bytes):
            return predict_bytes(model, images, "picture", k, threshold)
        if isinstance(images, (str, Path)):
            return predict_bytes(model, read_file_bytes(images), str(images), k, threshold, file=str(images))
        inputs = array_to_inputs(np.asarray(images), "images")
        return predictions_from(model.scores(inputs), inputs, model, k, threshold, indexed=len(inputs) > 1)

    def read(self, picture: str | Path | bytes, top_k: int = 3, min_confidence: float | None = None) -> NumberReading:
        """The number written on one line in PICTURE (a file's path or its bytes), as `lenet predict
        --number` reads it: its .number ("407", or None when a position is declined), its .reading
        ("4?7"), and its .digits, each a prediction with its box (x, y, width, height) in the picture's
        pixels; .to_json() is what `lenet predict --number --json` prints."""
        if isinstance(picture, bytes):
            payload, name, file = picture, "picture", None
        else:
            payload, name = read_file_bytes(picture), str(picture)
            file = name
        return read_number(open_model(self.model_dir, self.device, precision=self.precision), payload, name, top_k,
                           file=file, min_confidence=min_confidence)
