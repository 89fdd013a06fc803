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

from .decline import ANSWERED, DIGIT, NO_INK, verdict

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
    """What lenet answered for one input. VERDICT (see lenet.decline) says whether it answered: "digit"
    (or "item" for a model of another data set), or why not: "not a digit", "unsure", "no ink",
    "several digits". When it answered, CLASS_ is the class, named LABEL; declined, both are None but
    the network's PROBABILITIES (calibrated) and TOP_K still say what the input nearly was. CONFIDENCE
    is the calibrated probability of the (closest) class, DIGIT_PROBABILITY the digit gate's probability
    that the input is a digit at all (None for models without a gate). A picture with no ink, or with
    several digits, never reached the network: it has no probabilities. FILE and INDEX say where the
    input came from (INDEX: its position in a multi-image file, None for a single picture); INPUT is the
    float (28, 28) the network saw."""
    class_: int | None
    label: str | None
    probabilities: tuple[float, ...] | None
    top_k: tuple[RankedClass, ...]
    confidence: float | None
    verdict: str = DIGIT
    digit_probability: float | None = None
    input: np.ndarray | None = None
    file: str | None = None
    index: int | None = None

    @classmethod
    def from_probabilities(cls, row: np.ndarray, classes: tuple[str, ...], k: int, image: np.ndarray | None = None,
                           file: str | None = None, index: int | None = None, digit_probability: float | None = None,
                           min_confidence: float = 0.0, of_digits: bool = True) -> Prediction:
        """The prediction whose calibrated probabilities are ROW, ranking its K most likely CLASSES, with the
        verdict of lenet.decline for MIN_CONFIDENCE and DIGIT_PROBABILITY."""
        ranked = np.argsort(-row, kind="stable")[:k]
        top_k = tuple(RankedClass(int(c), classes[c], float(row[c])) for c in ranked)
        confidence = top_k[0].probability
        said = verdict(confidence, digit_probability, min_confidence, of_digits)
        answered = said in ANSWERED
        return cls(top_k[0].class_ if answered else None, top_k[0].label if answered else None,
                   tuple(float(p) for p in row), top_k, confidence, said,
                   None if digit_probability is None else float(digit_probability), image, file, index)

    @classmethod
    def unread(cls, said: str, file: str | None = None, index: int | None = None) -> Prediction:
        """A picture declined before the network saw it: SAID is "no ink" or "several digits"."""
        return cls(None, None, None, (), None, said, None, None, file, index)

    @property
    def answered(self) -> bool:
        return self.verdict in ANSWERED

    @property
    def closest(self) -> RankedClass | None:
        """The most likely class, answered or not (None when the network never saw the input)."""
        return self.top_k[0] if self.top_k else None

    def to_json(self, include_input: bool = False) -> dict:
        answer = {} if self.file is None else {"file": self.file, "index": self.index}
        answer |= {"class": self.class_, "label": self.label, "verdict": self.verdict,
                   "confidence": None if self.confidence is None else float32_json(self.confidence),
                   "digit_probability": None if self.digit_probability is None
                   else float32_json(self.digit_probability),
                   "probabilities": None if self.probabilities is None
                   else [float32_json(p) for p in self.probabilities],
                   "top_k": [ranked.to_json() for ranked in self.top_k]}
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
    """A number written on one line, read digit by digit, left to right (FILE: the picture's file).
    NUMBER is None when any position was declined (a mark that is not a digit, or one too unsure to
    name); READING then shows it, "?" at each declined position ("4?7")."""
    number: str | None
    reading: str
    digits: tuple[DigitReading, ...]
    file: str | None = None
    verdict: str = "number"   # "number", "declined" (a position is), or "no ink"

    @classmethod
    def without_ink(cls, file: str | None = None) -> NumberReading:
        return cls(None, "", (), file, NO_INK)

    @classmethod
    def from_digits(cls, digits: tuple[DigitReading, ...], file: str | None = None) -> NumberReading:
        reading = "".join(d.prediction.label if d.prediction.answered else "?" for d in digits)
        return cls(None if "?" in reading else reading, reading, digits, file, "declined" if "?" in reading else "number")

    def to_json(self, include_input: bool = False) -> dict:
        return ({} if self.file is None else {"file": self.file}) | {
            "number": self.number, "reading": self.reading, "verdict": self.verdict,
            "digits": [digit.to_json(include_input) for digit in self.digits]}


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
class Calibration:
    """How far a model's probabilities can be trusted on a split: the negative log-likelihood and the
    expected calibration error (15 bins) of its calibrated probabilities (softmax(logits / TEMPERATURE)),
    and the share of the split it DECLINED at its threshold MIN_CONFIDENCE (see lenet.decline)."""
    temperature: float
    nll: float
    ece: float
    min_confidence: float
    declined: float

    def to_json(self) -> dict:
        return {"temperature": self.temperature, "nll": self.nll, "ece": self.ece,
                "min_confidence": self.min_confidence, "declined": self.declined}


@dataclass(frozen=True)
class Evaluation:
    """A model's metrics on one split, at its checkpoint's STEP (None for an ONNX file without one),
    in PRECISION, with test-time augmentation when TTA, and how well calibrated it is."""
    step: int | None
    split: str
    tta: bool
    precision: str
    metrics: Metrics
    calibration: Calibration | None = None

    def to_json(self) -> dict:
        return {"step": self.step, "split": self.split, "tta": self.tta, "precision": self.precision,
                **self.metrics.to_json(), **(self.calibration.to_json() if self.calibration else {})}


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
