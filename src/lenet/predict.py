"""Classify images, .npy arrays and IDX files, and read numbers, with a trained model (see inference.open_model)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .datasets import reads_digits
from .decline import check_min_confidence
from .errors import Declined, LenetError, NoInk
from .files import atomic_write_bytes, check_output_path, read_file_bytes
from .inference import LoadedModel, Scores, check_top_k
from .pictures.decode import MAX_IMAGE_PIXELS
from .pictures.inputs import check_reads_numbers, inputs_from_bytes
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


def predict_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None,
                  min_confidence: float | None = None) -> Iterator[FileResult]:
    """One Prediction per image (its file, and its index inside a multi-image file such as .npy or
    IDX), or one FileError for a file that cannot be read; the other files are still predicted.

    MODEL comes from inference.open_model; K (3 by default) says how many ranked classes top_k holds;
    MIN_CONFIDENCE is the threshold for answering (the model's own by default; see lenet.decline).
    A picture without ink, or holding several digits, is a Prediction with that verdict. Each
    prediction's input is the float (28, 28) the network saw (a picture normalized for the model's data set).
    """
    k = check_top_k(k, model.num_classes)
    threshold = model_threshold(model, min_confidence)
    for path in paths:
        try:
            answers = predict_bytes(model, read_file_bytes(path), str(path), k, threshold, file=str(path))
        except LenetError as error:
            yield FileError(str(path), str(error))
            continue
        yield from answers


def predict_bytes(model: LoadedModel, payload: bytes, name: str, k: int, min_confidence: float,
                  file: str | None = None) -> list[Prediction]:
    """The Predictions for a file's bytes (a picture, .npy or IDX; NAME its path), answered at
    MIN_CONFIDENCE; a picture without ink or holding several digits is answered without the network."""
    try:
        inputs, is_array = inputs_from_bytes(payload, name, model.info.dataset)
    except Declined as declined:
        return [Prediction.unread(declined.verdict, file)]
    return predictions_from(model.scores(inputs), inputs, model, k, min_confidence, file, is_array)


def model_threshold(model: LoadedModel, min_confidence: float | None) -> float:
    """MIN_CONFIDENCE checked, or MODEL's own threshold when it is None."""
    return model.min_confidence if min_confidence is None else check_min_confidence(min_confidence)


def predictions_from(scores: Scores, inputs: np.ndarray, model: LoadedModel, k: int, min_confidence: float,
                     file: str | None = None, indexed: bool = False) -> list[Prediction]:
    """The Predictions whose SCORES MODEL gave for INPUTS (N, 28, 28), answered at MIN_CONFIDENCE
    (INDEXED: each names its index in FILE)."""
    of_digits = reads_digits(model.info.dataset)
    digit = scores.digit_probabilities
    return [Prediction.from_probabilities(row, model.info.classes, k, image, file, i if indexed else None,
                                          None if digit is None else float(digit[i]), min_confidence, of_digits)
            for i, (image, row) in enumerate(zip(inputs, scores.probabilities))]


def item_predictions(items: list[np.ndarray | Declined], scores: Scores | None, model: LoadedModel, k: int,
                     min_confidence: float) -> list[Prediction]:
    """The Predictions of ITEMS, in order: each a float (n, 28, 28) array of inputs whose SCORES are the
    next n of SCORES, or a picture Declined before the network saw it."""
    answers, offset = [], 0
    for item in items:
        if isinstance(item, Declined):
            answers.append(Prediction.unread(item.verdict))
        else:
            answers.extend(predictions_from(scores[offset:offset + len(item)], item, model, k, min_confidence))
            offset += len(item)
    return answers


def read_number_result(number: NumberInputs, scores: Scores, k: int | None = None, file: str | None = None,
                       min_confidence: float = 0.0) -> NumberReading:
    """The number NUMBER's marks make, from the SCORES of its inputs. Of the ways to read a group of
    marks (one digit, or two or more touching), the one whose digits the network is surest of together
    wins: the product of their top probabilities, so that a cut must make every piece a clear digit to
    beat the whole. Each digit then has its verdict at MIN_CONFIDENCE: a mark that is not a digit is
    never silently read as one."""
    probabilities = scores.probabilities
    k = check_top_k(k, probabilities.shape[1])
    chosen = [max(ways, key=lambda way: float(np.prod([probabilities[i].max() for i in way])))
              for ways in number.groups]
    classes = tuple(str(c) for c in range(probabilities.shape[1]))
    digit = scores.digit_probabilities
    digits = tuple(DigitReading(Prediction.from_probabilities(probabilities[i], classes, k, number.inputs[i],
                                                              digit_probability=None if digit is None else float(digit[i]),
                                                              min_confidence=min_confidence),
                                tuple(number.boxes[i])) for way in chosen for i in way)
    return NumberReading.from_digits(digits, file)


def read_number(model: LoadedModel, payload: bytes, name: str, k: int | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS, file: str | None = None,
                min_confidence: float | None = None) -> NumberReading:
    """The number written on one line in a picture file's bytes (see read_number_result); MODEL must be
    of digits. A picture without ink reads as no number."""
    check_reads_numbers(model.info.dataset, model.source)
    threshold = model_threshold(model, min_confidence)
    try:
        number = image_to_number_inputs(payload, name, max_pixels)
    except NoInk:
        return NumberReading.without_ink(file)
    return read_number_result(number, model.scores(number.inputs), k, file, threshold)


def read_number_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None,
                      min_confidence: float | None = None) -> Iterator[FileResult]:
    """One NumberReading per picture (see read_number_result), or a FileError."""
    check_reads_numbers(model.info.dataset, model.source)
    k = check_top_k(k, model.num_classes)
    threshold = model_threshold(model, min_confidence)
    for path in paths:
        try:
            yield read_number(model, read_file_bytes(path), str(path), k, file=str(path), min_confidence=threshold)
        except LenetError as error:
            yield FileError(str(path), str(error))
