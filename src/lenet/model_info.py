"""What a trained model says about itself (ModelInfo), whether read from a checkpoint or an exported
file, and what its network takes and returns, in words.

Plain data, importable without torch: an exported model describes itself without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

INPUT_FORMAT = ("images: float32 (N, 1, 28, 28), white ink on black, pixel / 255 in [0, 1], the digit "
                "normalized as MNIST (longer side 20 px, centred by centre of mass in 28x28; "
                "`lenet predict` and lenet.pictures do this); output logits: float32 (N, 10), "
                "softmax gives the probabilities of classes 0-9")


def input_format(dataset: str, classes: tuple[str, ...]) -> str:
    """What an exported network of DATASET takes and returns, in words (INPUT_FORMAT for MNIST)."""
    if dataset == "mnist":
        return INPUT_FORMAT
    picture = ("the item normalized as Fashion-MNIST (background trimmed, longer side 28 px, centred, light on "
               "dark)" if dataset == "fashion-mnist" else "as the data set's IDX images")
    return (f"images: float32 (N, 1, 28, 28), pixel / 255 in [0, 1], {picture}; `lenet predict` and "
            f"lenet.pictures do this; output logits: float32 (N, {len(classes)}), softmax gives the "
            f"probabilities of the classes in lenet.classes")


@dataclass(frozen=True)
class ModelInfo:
    """What a model says about itself: from a checkpoint's sidecar or an ONNX file's lenet.* properties.
    Any field may be None for an ONNX file made elsewhere."""
    model: str | None                # the registered network, e.g. "tutorial-cnn"
    recipe: str | None               # the recipe's name
    step: int | None
    test_accuracy: float | None
    weights_sha256: str | None
    evaluation_weights: str | None   # "moving_average" or "trained"
    trained_on_validation: bool      # the recipe's train_on_validation: its validation split is not held out
    dataset: str                     # what it was trained on: one of datasets.DATASET_NAMES
    classes: tuple[str, ...]         # the names of its outputs, in order
    dataset_sha256: dict[str, str]   # of the files it was trained on (empty when unknown)
    input_format: str = INPUT_FORMAT

    def to_dict(self) -> dict:
        """The fields GET /model reports."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k not in ("trained_on_validation", "input_format")}
