"""The Recipe dataclass (everything a training run needs) and the table of the tutorials' recipes.

Plain data, importable without torch, so that `lenet --help` starts at once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .datasets import DATASET_NAMES, check_dataset_name
from .errors import LenetError

# The distortions augment.py implements, by name.
AUGMENTATIONS = ("none", "affine", "elastic")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
LOSS_REDUCTIONS = ("mean", "sum")
LR_SCHEDULES = ("exponential", "one-cycle")
# The Python types a field's annotation allows (an int is a valid float; a bool is not a number).
_FIELD_TYPES = {"str": (str,), "float": (int, float), "int": (int,), "bool": (bool,)}
_TYPE_NAMES = {"str": "a string", "float": "a finite number", "int": "an integer", "bool": "true or false"}
# The largest accepted values: beyond them a value is a typo, and some would fail deep inside torch
# (a seed past the generator's 64 bits, a log interval whose per-step buffer needs terabytes, a
# learning rate that overflows float32 in the update). The learning rate may still be absurd enough
# to make a run diverge, which is then reported as such.
_UPPER_BOUNDS = {"seed": 2 ** 32 - 1, "batch_size": 60_000, "total_steps": 10 ** 9, "log_every_steps": 10 ** 6,
                 "eval_every_steps": 10 ** 9, "checkpoint_every_steps": 10 ** 9, "keep_checkpoints": 10_000,
                 "lr_decay_steps": 10 ** 9, "learning_rate": 1e20, "lr_decay_rate": 1e3, "momentum": 1e3,
                 "l2_rate": 1e3, "weight_decay": 1e3, "adam_epsilon": 1.0}


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class Recipe:
    """A complete, frozen description of one training run."""
    name: str = _help("recipe name")
    source: str = _help("the tutorial this recipe reproduces")
    model: str = _help("registered network name (see `lenet models`)")
    optimizer: str = _help(f"one of {', '.join(OPTIMIZERS)}")
    learning_rate: float = _help("base learning rate")
    momentum: float = _help("momentum coefficient (optimizers 'momentum' and 'nesterov')", default=0.9)
    adam_epsilon: float = _help("Adam's epsilon (TensorFlow's default 1e-8)", default=1e-8)
    adam_beta1: float = _help("Adam's decay of the gradient's running mean", default=0.9)
    adam_beta2: float = _help("Adam's decay of the squared gradient's running mean", default=0.999)
    lr_decay_rate: float = _help("exponential decay factor; 1.0 keeps the rate constant", default=1.0)
    lr_decay_steps: int = _help("steps per decay period", default=1)
    lr_staircase: bool = _help("decay in whole periods (TF staircase=True)", default=False)
    lr_schedule: str = _help("'exponential' (the tutorials' decay, fields lr_decay_*) or 'one-cycle' "
                             "(linear rise to learning_rate over lr_warmup_fraction of the run, then "
                             "linear fall to zero)", default="exponential")
    lr_warmup_fraction: float = _help("one-cycle: share of the steps spent rising", default=0.25)
    batch_size: int = _help("training images per step", default=100)
    total_steps: int = _help("training steps", default=1000)
    l2_rate: float = _help("L2 rate on the fully connected weights, TF's rate * sum(w^2) / 2", default=0.0)
    ema_decay: float = _help("moving-average decay of the weights, 0 for none; "
                             "evaluation then uses the averaged weights", default=0.0)
    weight_decay: float = _help("SGD/Adam weight decay on every parameter (coupled, added to the "
                                "gradient), 0 for none", default=0.0)
    label_smoothing: float = _help("cross-entropy against targets smoothed toward uniform by this much",
                                   default=0.0)
    augment: str = _help(f"random distortion of each training batch: {', '.join(AUGMENTATIONS)}",
                         default="none")
    train_on_validation: bool = _help("also train on the 5,000 validation images (all 60,000 training "
                                      "images); validation is then skipped", default=False)
    loss_reduction: str = _help("cross-entropy over the batch: 'mean' or 'sum' (seed 001's text)",
                                default="mean")
    log_every_steps: int = _help("steps between training log lines", default=100)
    eval_every_steps: int = _help("steps between validation evaluations", default=1000)
    checkpoint_every_steps: int = _help("steps between checkpoints", default=1000)
    keep_checkpoints: int = _help("how many of the newest checkpoints to keep", default=5)
    seed: int = _help("seed of initialization, dropout and batch order", default=0)
    dataset: str = _help(f"what to train on: {', '.join(DATASET_NAMES)} (idx: the four IDX files of --data-dir); "
                         f"every recipe runs on each unchanged", default="mnist")

    def __post_init__(self):
        for f in dataclasses.fields(self):  # a recipe.json edited by hand may hold any JSON value
            value = getattr(self, f.name)
            if (not isinstance(value, _FIELD_TYPES[f.type]) or (f.type != "bool" and isinstance(value, bool))
                    or (f.type == "float" and not math.isfinite(value))):
                raise LenetError(f"recipe field {f.name}: expected {_TYPE_NAMES[f.type]}, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise LenetError(f"recipe field optimizer: {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise LenetError(f"recipe field loss_reduction: {self.loss_reduction!r} is not one of "
                             f"{', '.join(LOSS_REDUCTIONS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise LenetError(f"recipe field lr_schedule: {self.lr_schedule!r} is not one of "
                             f"{', '.join(LR_SCHEDULES)}")
        check_dataset_name(self.dataset, "recipe field dataset")
        if self.augment not in AUGMENTATIONS:
            raise LenetError(f"recipe field augment: {self.augment!r} is not one of {', '.join(AUGMENTATIONS)}")
        for name in ("lr_warmup_fraction", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LenetError(f"recipe field {name}: must be in [0, 1), got {getattr(self, name)}")
        positive = ("learning_rate", "lr_decay_rate", "lr_decay_steps", "batch_size", "total_steps",
                    "log_every_steps", "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints",
                    "adam_epsilon")
        for name in positive:
            if not getattr(self, name) > 0:
                raise LenetError(f"recipe field {name}: must be positive, got {getattr(self, name)}")
        for name in ("l2_rate", "momentum", "weight_decay"):
            if getattr(self, name) < 0:
                raise LenetError(f"recipe field {name}: must be >= 0, got {getattr(self, name)}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LenetError(f"recipe field {name}: must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise LenetError(f"recipe field ema_decay: must be in [0, 1), got {self.ema_decay}")
        if self.seed < 0:
            raise LenetError(f"recipe field seed: must be >= 0, got {self.seed}")
        for name, bound in _UPPER_BOUNDS.items():
            if getattr(self, name) > bound:
                raise LenetError(f"recipe field {name}: must be at most {bound:,}, got {getattr(self, name):,}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: object, origin: str) -> "Recipe":
        """Rebuild a recipe from the JSON read from ORIGIN (named in errors), refusing unknown keys."""
        if not isinstance(values, dict):
            raise LenetError(f"{origin}: the recipe is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LenetError(f"{origin}: unknown recipe field(s): {', '.join(unknown)}")
        try:
            return _with_known_model(cls(**values))
        except (TypeError, LenetError) as error:  # TypeError: a required field is missing
            raise LenetError(f"{origin}: {error}") from None


def _with_known_model(recipe: Recipe) -> Recipe:
    """RECIPE, once its model is known to the registry. Checked where recipes come in from outside
    (files, overrides) rather than in __post_init__: the registry needs torch, the table does not."""
    from .models import list_models
    if recipe.model not in list_models():
        raise LenetError(f"recipe field model: unknown model {recipe.model!r}; "
                         f"known models: {', '.join(list_models())}")
    return recipe


def override(recipe: Recipe, **changes) -> Recipe:
    """A copy of RECIPE with fields replaced; unknown field names are errors."""
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise LenetError(f"unknown recipe field(s): {', '.join(unknown)}")
    return _with_known_model(dataclasses.replace(recipe, **changes))


# Seed 003's mnist_train.py, reused by seed 000's CNN chapter: batch 100, learning rate decayed by
# 0.99 every 55,000 / 100 = 550 steps (staircase), L2 1e-4, moving average 0.99, 30,000 steps.
_BOOK = Recipe(
    name="", source="", model="mlp", optimizer="sgd", learning_rate=0.8,
    lr_decay_rate=0.99, lr_decay_steps=550, lr_staircase=True,
    batch_size=100, total_steps=30_000, l2_rate=1e-4, ema_decay=0.99,
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    dataclasses.replace(_BOOK, name="mlp-ema", source="seed 003: 784-500-10 MLP, SGD 0.8 decayed, L2, EMA"),
    # The book's CNN chapter lowers the base learning rate to 0.01 for the convolutional network.
    dataclasses.replace(_BOOK, name="tutorial-cnn", model="tutorial-cnn", learning_rate=0.01,
                        source="seed 000: mnist_inference CNN with mnist_train's schedule"),
    dataclasses.replace(_BOOK, name="lenet5", model="lenet5", learning_rate=0.01,
                        source="seed 000: classic LeNet-5 trained with the tutorial's schedule"),
    # "Deep MNIST for experts": Adam 1e-4, batch 50, 20,000 steps, keep_prob 0.5 (model), no L2/EMA.
    Recipe(name="deep-mnist", source="seed 001: Deep MNIST for experts (Adam 1e-4, batch 50)",
           model="deep-mnist", optimizer="adam", learning_rate=1e-4, batch_size=50, total_steps=20_000),
    Recipe(name="cnn-adam", source="seed 002: standard-normal init, Adam 1e-3, batch 128, 500 steps",
           model="beginner-cnn", optimizer="adam", learning_rate=1e-3, batch_size=128, total_steps=500,
           log_every_steps=10, eval_every_steps=100, checkpoint_every_steps=100),
    Recipe(name="layers-cnn", source="seed 004: tf.layers CNN Estimator, SGD 0.001, batch 100",
           model="layers-cnn", optimizer="sgd", learning_rate=1e-3, batch_size=100, total_steps=20_000,
           log_every_steps=50),
    # Beyond the tutorials: a small network with BatchNorm (a tenth of bn-cnn's arithmetic, which on
    # a CPU is training time) reaches 99% in one pass with one-cycle Adam and label smoothing (recipe
    # `fast`; docs/speed.md says what else was tried); a deeper network (two convolutions per block)
    # trained longer on distorted digits, with label smoothing and weight averaging, gives the best single
    # model (recipe `best`). With the same schedule the wider one-convolution network `bn-cnn-wide`
    # averaged 99.67% over 5 seeds, `bn-cnn-deep` 99.73% over 3. Affine distortions only:
    # adding Simard's elastic field left the network underfitting (99.41%).
    Recipe(name="fast", source="lenet: least training to 99% test accuracy (small BatchNorm CNN, one pass, "
                                "one-cycle Adam)",
           model="fast-cnn", optimizer="adam", learning_rate=0.01, adam_beta1=0.7, adam_beta2=0.9,
           lr_schedule="one-cycle", lr_warmup_fraction=0.2, batch_size=256, total_steps=214, label_smoothing=0.1,
           log_every_steps=50, eval_every_steps=214, checkpoint_every_steps=214),
    Recipe(name="best", source="lenet: highest accuracy of one model (deep BatchNorm CNN, distortions, EMA)",
           model="bn-cnn-deep", optimizer="nesterov", learning_rate=0.1, lr_schedule="one-cycle",
           lr_warmup_fraction=0.15, batch_size=128, total_steps=6_440, weight_decay=5e-4,
           label_smoothing=0.1, augment="affine", ema_decay=0.999,
           log_every_steps=100, eval_every_steps=1_000, checkpoint_every_steps=1_000),
)}

DEFAULT_RECIPE = "tutorial-cnn"
# The recipes the tutorials themselves define (benchmarks/accuracy/reproduce.py trains them); `fast` and
# `best` are lenet's own.
SEED_RECIPES = ("mlp-ema", "tutorial-cnn", "lenet5", "deep-mnist", "cnn-adam", "layers-cnn")


def get_recipe(name: str) -> Recipe:
    """A named recipe from the table; unknown names list the known ones."""
    if name not in RECIPES:
        raise LenetError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
