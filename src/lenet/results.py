"""The answers lenet gives, as frozen dataclasses, each turned into JSON by its one to_json().

Predictions, file errors, number readings, evaluations and training events are built where they are
computed (predict, evaluation, training) and only translated at the edges: `lenet ... --json` prints
to_json(), the HTTP server answers to_json(), the CLI's text is a view of the same object. So the
command line and the server agree by construction.

Probabilities are float32 numbers, written in JSON as the shortest decimal that reads back as the
same float32 (0.9999999, 3.1e-09): exact, and no float64 noise digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

# Rounding of the 28x28 input the network saw when an answer includes it: enough for a picture.
INPUT_DECIMALS = 4


def float32_json(value: float) -> float:
    """VALUE as a float32 number written with the fewest digits that read back as that float32."""
    return float(str(np.float32(value)))  # numpy's str of a float32 is its shortest round-tripping decimal


@dataclass(frozen=True)
class RankedClass:
    """One of a prediction's K most likely classes."""
    class_: int
    label: str
    probability: float

    def to_json(self) -> dict:
        return {"class": self.class_, "label": self.label, "probability": float32_json(self.probability)}


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the network answered for one input: its class (named LABEL), every class's probability,
    the TOP_K most likely, and the probability of the answer (CONFIDENCE). FILE and INDEX say where
    the input came from (INDEX: its position in a multi-image file, None for a single picture); INPUT
    is the float (28, 28) the network saw."""
    class_: int
    label: str
    probabilities: tuple[float, ...]
    top_k: tuple[RankedClass, ...]
    confidence: float
    input: np.ndarray | None = None
    file: str | None = None
    index: int | None = None

    @classmethod
    def from_probabilities(cls, row: np.ndarray, classes: tuple[str, ...], k: int, image: np.ndarray | None = None,
                           file: str | None = None, index: int | None = None) -> Prediction:
        """The prediction whose probabilities are ROW, ranking its K most likely CLASSES."""
        ranked = np.argsort(-row, kind="stable")[:k]
        top_k = tuple(RankedClass(int(c), classes[c], float(row[c])) for c in ranked)
        return cls(top_k[0].class_, top_k[0].label, tuple(float(p) for p in row), top_k, top_k[0].probability,
                   image, file, index)

    def to_json(self, include_input: bool = False) -> dict:
        answer = {} if self.file is None else {"file": self.file, "index": self.index}
        answer |= {"class": self.class_, "label": self.label,
                   "probabilities": [float32_json(p) for p in self.probabilities],
                   "top_k": [ranked.to_json() for ranked in self.top_k],
                   "confidence": float32_json(self.confidence)}
        if include_input and self.input is not None:
            answer["input"] = np.round(self.input, INPUT_DECIMALS).tolist()
        return answer

    @property
    def where(self) -> str:
        """The file, with the input's index when the file holds several: 'batch.npy[3]'."""
        return f"{self.file}" if self.index is None else f"{self.file}[{self.index}]"


@dataclass(frozen=True)
class FileError:
    """A file that could not be read or classified; the other files are still answered."""
    file: str
    error: str

    def to_json(self, include_input: bool = False) -> dict:
        return {"file": self.file, "error": self.error}


@dataclass(frozen=True, eq=False)
class DigitReading:
    """One digit of a number: the prediction for its 28x28 and its BOX (x, y, width, height) in the
    picture's pixels."""
    prediction: Prediction
    box: tuple[int, int, int, int]

    def to_json(self, include_input: bool = False) -> dict:
        return self.prediction.to_json(include_input) | {"box": list(self.box)}


@dataclass(frozen=True, eq=False)
class NumberReading:
    """A number written on one line, read digit by digit, left to right (FILE: the picture's file)."""
    number: str
    digits: tuple[DigitReading, ...]
    file: str | None = None

    def to_json(self, include_input: bool = False) -> dict:
        return ({} if self.file is None else {"file": self.file}) | {
            "number": self.number, "digits": [digit.to_json(include_input) for digit in self.digits]}


# What predicting files yields: an answer, or the error of a file that could not be read.
FileResult = Union[Prediction, NumberReading, FileError]


@dataclass(frozen=True)
class ClassMetrics:
    """Precision and recall of one class, and how many examples of it there were (SUPPORT)."""
    class_: int
    label: str
    precision: float
    recall: float
    support: int

    def to_json(self) -> dict:
        return {"class": self.class_, "label": self.label, "precision": self.precision, "recall": self.recall,
                "support": self.support}


@dataclass(frozen=True)
class Metrics:
    """Loss, accuracy, top-K accuracy, per-class precision/recall and the confusion matrix (rows: the
    true class, columns: the predicted one) on EXAMPLES labelled examples."""
    examples: int
    loss: float
    accuracy: float
    top_k: int
    top_k_accuracy: float
    classes: tuple[str, ...]
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict:
        # "top_5_accuracy" is the key eval --json has always written; "top_k" says which k it is.
        return {"examples": self.examples, "loss": self.loss, "accuracy": self.accuracy, "top_k": self.top_k,
                f"top_{self.top_k}_accuracy": self.top_k_accuracy, "classes": list(self.classes),
                "per_class": [row.to_json() for row in self.per_class],
                "confusion": [list(row) for row in self.confusion]}


@dataclass(frozen=True)
class Evaluation:
    """A model's metrics on one split, at its checkpoint's STEP (None for an ONNX file without one),
    in PRECISION, with test-time augmentation when TTA."""
    step: int | None
    split: str
    tta: bool
    precision: str
    metrics: Metrics

    def to_json(self) -> dict:
        return {"step": self.step, "split": self.split, "tta": self.tta, "precision": self.precision,
                **self.metrics.to_json()}


@dataclass(frozen=True)
class MemberResult:
    """One member of an ensemble on its own: its accuracy and how many images it gets wrong."""
    model_dir: str
    step: int | None
    errors: int
    accuracy: float

    def to_json(self) -> dict:
        return {"model_dir": self.model_dir, "step": self.step, "errors": self.errors, "accuracy": self.accuracy}


@dataclass(frozen=True)
class EnsembleEvaluation:
    """The metrics of several models' mean probabilities, each member's own figures, and how many
    images every member gets wrong (averaging cannot fix those)."""
    split: str
    tta: bool
    members: tuple[MemberResult, ...]
    errors_of_every_member: int
    metrics: Metrics

    def to_json(self) -> dict:
        return {"split": self.split, "tta": self.tta, "members": [m.to_json() for m in self.members],
                "errors_of_every_member": self.errors_of_every_member, **self.metrics.to_json()}


# Training events: what the training loop reports as it runs (see training.train's REPORT).

@dataclass(frozen=True)
class TrainingStarted:
    step: int  # the step resumed from, 0 for a new run
    images: int
    device: str
    precision: str
    ranks: int


@dataclass(frozen=True)
class Compiled:
    step: int
    seconds: float


@dataclass(frozen=True)
class StepLogged:
    """The loss and its terms, batch accuracy, learning rate and speed over the steps since the last log."""
    step: int
    total_loss: float
    cross_entropy: float
    l2_loss: float
    batch_accuracy: float
    learning_rate: float
    images_per_s: float


@dataclass(frozen=True)
class Validated:
    step: int
    accuracy: float


@dataclass(frozen=True)
class Tested:
    step: int
    accuracy: float


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


TrainingEvent = Union[TrainingStarted, Compiled, StepLogged, Validated, Tested, CheckpointSaved]
