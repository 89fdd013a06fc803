"""Classify images, .npy arrays and IDX files, and read numbers, with a trained model (see inference.open_model)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .errors import LenetError
from .files import atomic_write_bytes, check_output_path, read_file_bytes
from .inference import LoadedModel, check_top_k
from .pictures.decode import MAX_IMAGE_PIXELS
from .pictures.inputs import check_reads_numbers, read_inputs
from .pictures.numbers import NumberInputs, image_to_number_inputs
from .results import DigitReading, FileError, FileResult, NumberReading, Prediction


def write_input_picture(image: np.ndarray, directory: str | Path, name: str, taken: set[str]) -> Path:
    """The float (28, 28) input IMAGE as an 8-bit PNG DIRECTORY/NAME.png (NAME-2.png, ... when TAKEN
    already holds the name; the name used is added to it), so a user can see what the network saw."""
    stem, count = name, 1
    while f"{stem}.png" in taken:
        count += 1
        stem = f"{name}-{count}"
    taken.add(f"{stem}.png")
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(image * 255), 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    path = check_output_path(Path(directory) / f"{stem}.png", "png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def predict_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None) -> Iterator[FileResult]:
    """One Prediction per image (its file, and its index inside a multi-image file such as .npy or
    IDX), or one FileError for a file that cannot be read; the other files are still predicted.

    MODEL comes from inference.open_model; K (3 by default) says how many ranked classes top_k holds.
    Each prediction's input is the float (28, 28) the network saw (a picture normalized for the
    model's data set).
    """
    k = check_top_k(k, model.num_classes)
    for path in paths:
        try:
            inputs, is_array = read_inputs(path, model.info.dataset)
            probabilities = model.probabilities(inputs)
        except LenetError as error:
            yield FileError(str(path), str(error))
            continue
        for index, (image, row) in enumerate(zip(inputs, probabilities)):
            yield Prediction.from_probabilities(row, model.info.classes, k, image, str(path),
                                                index if is_array else None)


def predictions_from(probabilities: np.ndarray, inputs: np.ndarray, classes: tuple[str, ...], k: int) -> list[Prediction]:
    """The Predictions whose PROBABILITIES (N, classes) the network gave for INPUTS (N, 28, 28)."""
    return [Prediction.from_probabilities(row, classes, k, image) for image, row in zip(inputs, probabilities)]


def read_number_result(number: NumberInputs, probabilities: np.ndarray, k: int | None = None,
                       file: str | None = None) -> NumberReading:
    """The number NUMBER's marks make, from the PROBABILITIES (N, 10) of its inputs. Of the ways to read
    a group of marks (one digit, or two or more touching), the one whose digits the network is surest
    of together wins: the product of their top probabilities, so that a cut must make every piece a
    clear digit to beat the whole."""
    k = check_top_k(k, probabilities.shape[1])
    chosen = [max(ways, key=lambda way: float(np.prod([probabilities[i].max() for i in way])))
              for ways in number.groups]
    classes = tuple(str(c) for c in range(probabilities.shape[1]))
    digits = tuple(DigitReading(Prediction.from_probabilities(probabilities[i], classes, k, number.inputs[i]),
                                tuple(number.boxes[i])) for way in chosen for i in way)
    return NumberReading("".join(digit.prediction.label for digit in digits), digits, file)


def read_number(model: LoadedModel, payload: bytes, name: str, k: int | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS, file: str | None = None) -> NumberReading:
    """The number written on one line in a picture file's bytes (see read_number_result); MODEL must be
    of digits."""
    check_reads_numbers(model.info.dataset, model.source)
    number = image_to_number_inputs(payload, name, max_pixels)
    return read_number_result(number, model.probabilities(number.inputs), k, file)


def read_number_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None) -> Iterator[FileResult]:
    """One NumberReading per picture (see read_number_result), or a FileError."""
    check_reads_numbers(model.info.dataset, model.source)
    k = check_top_k(k, model.num_classes)
    for path in paths:
        try:
            yield read_number(model, read_file_bytes(path), str(path), k, file=str(path))
        except LenetError as error:
            yield FileError(str(path), str(error))
