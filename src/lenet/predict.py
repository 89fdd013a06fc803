"""Classify images, .npy arrays and IDX files, and read numbers, with a trained model (see inference.open_model)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .errors import LenetError
from .files import atomic_write_bytes, read_file_bytes
from .inference import LoadedModel, check_top_k
from .pictures.decode import MAX_IMAGE_PIXELS
from .pictures.inputs import check_reads_numbers, read_inputs
from .pictures.numbers import NumberInputs, image_to_number_inputs


def top_k(probabilities: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """The K most likely (class, probability) pairs of each row, most likely first."""
    probabilities = np.asarray(probabilities)
    k = check_top_k(k, probabilities.shape[1])
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(int(c), float(row[c])) for c in classes] for row, classes in zip(probabilities, ranked)]


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
    path = Path(directory) / f"{stem}.png"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def predict_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None) -> Iterator[dict]:
    """One result per image: {"file", "index", "class", "label", "probabilities", "top_k", "input"}, or
    {"file", "error"}.

    MODEL comes from inference.open_model; "label" is the class's name, and K (3 by default) says how
    many ranked classes "top_k" holds. "index" is the position inside a multi-image file (.npy, IDX)
    and None for a single image; "input" is the float (28, 28) the network saw (a picture normalized
    for the model's data set). A file that cannot be read yields one error result; the others are
    still predicted.
    """
    k = check_top_k(k, model.num_classes)
    classes = model.info.classes
    for path in paths:
        try:
            inputs, is_array = read_inputs(path, model.info.dataset)
            probabilities = model.probabilities(inputs)
        except LenetError as error:
            yield {"file": str(path), "error": str(error)}
            continue
        for index, (row, best) in enumerate(zip(probabilities, top_k(probabilities, k))):
            yield {"file": str(path), "index": index if is_array else None, "class": best[0][0],
                   "label": classes[best[0][0]], "probabilities": [round(float(p), 6) for p in row],
                   "top_k": best, "input": inputs[index]}


def read_number_result(number: NumberInputs, probabilities: np.ndarray, k: int | None = None) -> dict:
    """{"number", "digits": [{"class", "probabilities", "top_k", "box", "input"}]} from the
    PROBABILITIES (N, 10) of NUMBER's inputs. Of the ways to read a group of marks (one digit, or
    two or more touching), the one whose digits the network is surest of together wins: the product
    of their top probabilities, so that a cut must make every piece a clear digit to beat the whole."""
    k = check_top_k(k, probabilities.shape[1])
    chosen = [max(ways, key=lambda way: float(np.prod([probabilities[i].max() for i in way])))
              for ways in number.groups]
    indices = [i for way in chosen for i in way]
    digits = [{"class": int(probabilities[i].argmax()),
               "probabilities": [round(float(p), 6) for p in probabilities[i]],
               "top_k": best, "box": list(number.boxes[i]), "input": number.inputs[i]}
              for i, best in zip(indices, top_k(probabilities[indices], k))]
    return {"number": "".join(str(d["class"]) for d in digits), "digits": digits}


def read_number(model: LoadedModel, payload: bytes, name: str, k: int | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS) -> dict:
    """The number written on one line in a picture file's bytes (see read_number_result); MODEL must be
    of digits."""
    check_reads_numbers(model.info.dataset, model.source)
    number = image_to_number_inputs(payload, name, max_pixels)
    return read_number_result(number, model.probabilities(number.inputs), k)


def read_number_files(model: LoadedModel, paths: Iterable[str | Path], k: int | None = None) -> Iterator[dict]:
    """One result per picture: {"file", "number", "digits"} (see read_number_result), or {"file", "error"}."""
    check_reads_numbers(model.info.dataset, model.source)
    k = check_top_k(k, model.num_classes)
    for path in paths:
        try:
            yield {"file": str(path), **read_number(model, read_file_bytes(path), str(path), k)}
        except LenetError as error:
            yield {"file": str(path), "error": str(error)}
