"""TensorBoard event files for training and evaluation runs: written with PyTorch's SummaryWriter,
read back with TensorBoard's own reader (for `lenet plot`).

Layout under a model directory: events/train (scalars, histograms, graph, misclassified images)
and events/eval-<split> (what `lenet eval` measured). `tensorboard --logdir MODEL_DIR` shows both.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from .data import to_float
from .errors import LenetError
from .files import EVENTS_DIR
from .models import eval_mode
from .results import Evaluation, StepLogged

TRAIN_RUN = "train"
# How many misclassified validation images go into the grid at each validation.
MISCLASSIFIED_SHOWN = 36

# Training-log fields and the scalar tags they are written under.
LOG_SCALARS = {
    "total_loss": "train/total_loss",
    "cross_entropy": "train/cross_entropy",
    "l2_loss": "train/l2_loss",
    "batch_accuracy": "train/batch_accuracy",
    "learning_rate": "train/learning_rate",
    "images_per_s": "train/images_per_s",
}
VALIDATION_ACCURACY = "validation/accuracy"
GRADIENT_PREFIX = "gradient_mean_abs/"
TILE = 56  # a 28x28 digit drawn at 2x in the labelled grids


def train_events_dir(model_dir: str | Path) -> Path:
    return Path(model_dir) / EVENTS_DIR / TRAIN_RUN


def mistake_caption(classes: tuple[str, ...], true: int, predicted: int, detail: str = "") -> str:
    """'3>5 DETAIL' for digits; for longer class names the true one above '>predicted DETAIL'."""
    separator = "" if max(len(classes[true]), len(classes[predicted])) == 1 else "\n"
    return f"{classes[true]}{separator}>{classes[predicted]}{' ' + detail if detail else ''}"


def labelled_grid(images: np.ndarray, captions: list[str], columns: int = 6) -> np.ndarray:
    """uint8 (N, 28, 28) images drawn 2x, white on black, each captioned beneath (a caption may have
    several lines; a tile widens to its widest line) -> uint8 (H, W) image (the misclassified images
    of the events, and `lenet plot`'s confident mistakes)."""
    rows = math.ceil(len(images) / columns) if len(images) else 1
    font = ImageFont.load_default(size=12)
    lines = [line for caption in captions for line in caption.split("\n")]
    tile_w = max([TILE] + [math.ceil(font.getlength(line)) + 4 for line in lines])
    caption_h = 14 * max([1] + [caption.count("\n") + 1 for caption in captions]) + 2
    sheet = Image.new("L", (columns * tile_w, rows * (TILE + caption_h)), 0)
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * tile_w, (i // columns) * (TILE + caption_h)
        sheet.paste(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((TILE, TILE), Image.NEAREST), (x, y))
        draw.multiline_text((x + 2, y + TILE + 1), caption, fill=255, font=font, spacing=2)
    return np.asarray(sheet)


def read_training_scalars(model_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the training events: tag -> [(step, value)], in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events_dir = train_events_dir(model_dir)
    if not events_dir.is_dir():
        raise LenetError(f"{model_dir}: no training events in {events_dir} (trained with --no-tensorboard?)")
    accumulator = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


@contextlib.contextmanager
def _writing(directory: Path):
    """Turns a failed write of events under DIRECTORY (a full disk) into a one-line LenetError."""
    try:
        yield
    except OSError as error:
        raise LenetError(f"{directory}: cannot write TensorBoard events ({error.strerror or error}); "
                         f"free some space or run with --no-tensorboard") from None


@contextlib.contextmanager
def _quiet_writer_failures() -> Iterator[None]:
    """For the block, a threading.excepthook that says nothing of a TensorBoard writer thread's OSError
    (lenet reports it as one line, see _writing) and passes every other thread's exception to the hook
    it replaced. Only while lenet writes events: the process's hook is its owner's otherwise."""
    previous = threading.excepthook

    def hook(args):
        writer_thread = type(args.thread).__module__.startswith("tensorboard.")
        if not (writer_thread and isinstance(args.exc_value, OSError)):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        if threading.excepthook is hook:  # a hook installed since then is left in place
            threading.excepthook = previous


class TrainingEvents:
    """Writes one training run's events; resuming at START_STEP hides events logged after it earlier.

    A failed write (a full disk) is a one-line LenetError naming the events directory. SummaryWriter
    writes from a thread, whose failure reaches the training loop at its next call; from opening to
    close() the thread's own traceback is kept quiet (_quiet_writer_failures), since the loop reports
    the error.
    """

    def __init__(self, model_dir: str | Path, start_step: int):
        self.directory = train_events_dir(model_dir)
        with contextlib.ExitStack() as quiet:  # kept until close(), given back at once if opening fails
            quiet.enter_context(_quiet_writer_failures())
            with _writing(self.directory):
                # purge_step makes TensorBoard drop events at or after the resume step from earlier
                # files, so an interrupted-and-resumed run shows one clean curve.
                self.writer = SummaryWriter(str(self.directory), purge_step=start_step or None)
            self._quiet = quiet.pop_all()

    def graph(self, model: nn.Module, example: torch.Tensor) -> None:
        """The network as TensorBoard's graph view (traced once, in eval mode)."""
        with _writing(self.directory):
            with eval_mode(model), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter about Python values in forward
                self.writer.add_graph(model, to_float(example))

    def log(self, event: StepLogged, gradient_mean_abs: dict[str, float]) -> None:
        """A training log event's LOG_SCALARS, and each layer's mean absolute gradient."""
        with _writing(self.directory):
            step = event.step
            for field, tag in LOG_SCALARS.items():
                self.writer.add_scalar(tag, getattr(event, field), step)
            for layer, value in gradient_mean_abs.items():
                self.writer.add_scalar(GRADIENT_PREFIX + layer, value, step)

    def validation(self, step: int, accuracy: float, misclassified: torch.Tensor,
                   labels: torch.Tensor, predictions: torch.Tensor, classes: tuple[str, ...]) -> None:
        """Validation accuracy and a captioned grid of (some of) the images the model got wrong."""
        with _writing(self.directory):
            self.writer.add_scalar(VALIDATION_ACCURACY, accuracy, step)
            if len(misclassified):
                captions = [mistake_caption(classes, t, p) for t, p in zip(labels.tolist(), predictions.tolist())]
                grid = labelled_grid(misclassified.cpu().numpy(), captions)
                self.writer.add_image("validation/misclassified (true -> predicted)", grid, step, dataformats="HW")

    def histograms(self, step: int, model: nn.Module) -> None:
        """Weight and gradient histograms of every parameter."""
        with _writing(self.directory):
            for name, parameter in model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", parameter.detach().float().cpu(), step)
                if parameter.grad is not None:
                    self.writer.add_histogram(f"gradients/{name}", parameter.grad.float().cpu(), step)

    def close(self) -> None:
        try:
            with _writing(self.directory):
                self.writer.close()  # joins the writer thread: no failure of it is left to come
        finally:
            self._quiet.close()


def write_eval_events(model_dir: str | Path, result: Evaluation) -> Path:
    """An evaluation (see evaluation.evaluate_model) as scalars at its checkpoint's step."""
    # Test-time-augmented results get their own run, so the two curves are not mixed.
    run_dir = Path(model_dir) / EVENTS_DIR / f"eval-{result.split}{'-tta' if result.tta else ''}"
    metrics = result.metrics
    with _quiet_writer_failures(), _writing(run_dir), SummaryWriter(str(run_dir)) as writer:
        writer.add_scalar("eval/loss", metrics.loss, result.step)
        writer.add_scalar("eval/accuracy", metrics.accuracy, result.step)
        writer.add_scalar(f"eval/top_{metrics.top_k}_accuracy", metrics.top_k_accuracy, result.step)
        for row in metrics.per_class:
            writer.add_scalar(f"eval/recall/{row.class_}", row.recall, result.step)
    return run_dir
