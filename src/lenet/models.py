"""The tutorials' networks and the registry that names them for the CLI and recipes."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .errors import LenetError
from .idx import IMAGE_SIZE, NUM_CLASSES
from .layers import AvgPool2d, Conv2d, MaxPool2d, init_bias, init_weight

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Add a model factory to the registry under its CLI name; names are unique."""
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory
    return add


def list_models() -> dict[str, str]:
    """Registered model names with the first line of their description."""
    return {name: (factory.__doc__ or "").strip().splitlines()[0] for name, factory in _REGISTRY.items()}


def build_model(name: str, **overrides) -> nn.Module:
    """Build a registered network, freshly initialized from the global torch RNG. Every network takes
    num_classes (default 10, the digits) among its OVERRIDES."""
    if name not in _REGISTRY:
        raise LenetError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**overrides)


def model_device(model: nn.Module) -> torch.device:
    """The device MODEL's parameters are on (a network lives on one)."""
    return next(model.parameters()).device


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """MODEL in eval mode (dropout off, BatchNorm on its running statistics) for the block, then back
    in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _initialized(layer: nn.Linear | Conv2d, initializer: str, bias: float) -> nn.Linear | Conv2d:
    """LAYER with its weight drawn by INITIALIZER and its bias set to BIAS (see init_bias)."""
    init_weight(layer.weight, initializer)
    init_bias(layer.bias, initializer, bias)
    return layer


class MLP(nn.Module):
    """Seed 003: 784 -> 500 ReLU -> 10, weights truncated-normal 0.1, biases 0.1."""

    def __init__(self, hidden: int = 500, initializer: str = "truncated_normal", fc_bias: float = 0.1,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.fc1 = _initialized(nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden), initializer, fc_bias)
        self.fc2 = _initialized(nn.Linear(hidden, num_classes), initializer, fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)   # (B, 784)
        x = F.relu(self.fc1(x))   # (B, 500)
        return self.fc2(x)        # (B, num_classes)


class ConvNet(nn.Module):
    """Two 5x5 SAME convolutions with 2x2 max-pools, one hidden dense layer, dropout, logits.

    One class for seeds 000 (tutorial), 001 (deep MNIST), 002 (beginners) and 004 (tf.layers):
    they differ only in widths, dropout, initializer and bias constants.
    """

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 512, dropout: float = 0.5,
                 kernel_size: int = 5, initializer: str = "truncated_normal",
                 conv_bias: float = 0.0, fc_bias: float = 0.1, num_classes: int = NUM_CLASSES):
        super().__init__()
        c1, c2 = channels
        self.conv1 = _initialized(Conv2d(1, c1, kernel_size, padding="SAME"), initializer, conv_bias)
        self.pool1 = MaxPool2d(2, 2, padding="SAME")
        self.conv2 = _initialized(Conv2d(c1, c2, kernel_size, padding="SAME"), initializer, conv_bias)
        self.pool2 = MaxPool2d(2, 2, padding="SAME")
        self.fc1 = _initialized(nn.Linear(7 * 7 * c2, hidden), initializer, fc_bias)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = _initialized(nn.Linear(hidden, num_classes), initializer, fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The tutorials pool after the ReLU; max-pooling commutes with ReLU (both are monotone),
        # so pooling first gives the same values and gradients for a quarter of the ReLU work.
        x = F.relu(self.pool1(self.conv1(x)))   # (B, 32, 14, 14)
        x = F.relu(self.pool2(self.conv2(x)))   # (B, 64, 7, 7)
        x = torch.flatten(x, 1)                 # (B, 3136)
        x = self.dropout(F.relu(self.fc1(x)))   # (B, 512)
        return self.fc2(x)                      # (B, num_classes)


class LeNet5(nn.Module):
    """LeNet-5 as seed 000 describes it: 32x32 input, C1 conv 6 -> S2 -> C3 conv 16 -> S4 -> C5 120 -> F6 84 -> 10.

    C1/C3 are VALID 5x5 convolutions (C3 fully connected to S2's six maps, not the paper's
    sparse table); S2/S4 are 2x2 stride-2 pools; the 28x28 MNIST digit is zero-padded to 32x32
    as in LeCun et al. (1998). Layer names: conv1=C1, pool1=S2, conv2=C3, pool2=S4, fc1=C5, fc2=F6, fc3=output.
    """

    def __init__(self, pool: str = "max", initializer: str = "truncated_normal",
                 conv_bias: float = 0.0, fc_bias: float = 0.1, num_classes: int = NUM_CLASSES):
        super().__init__()
        pool_layer = {"max": MaxPool2d, "avg": AvgPool2d}[pool]
        self.conv1 = _initialized(Conv2d(1, 6, 5, padding="VALID"), initializer, conv_bias)
        self.pool1 = pool_layer(2, 2, padding="VALID")
        self.conv2 = _initialized(Conv2d(6, 16, 5, padding="VALID"), initializer, conv_bias)
        self.pool2 = pool_layer(2, 2, padding="VALID")
        self.fc1 = _initialized(nn.Linear(5 * 5 * 16, 120), initializer, fc_bias)
        self.fc2 = _initialized(nn.Linear(120, 84), initializer, fc_bias)
        self.fc3 = _initialized(nn.Linear(84, num_classes), initializer, fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2))              # (B, 1, 32, 32)
        x = self.pool1(F.relu(self.conv1(x)))   # (B, 6, 14, 14)
        x = self.pool2(F.relu(self.conv2(x)))   # (B, 16, 5, 5)
        x = torch.flatten(x, 1)                 # (B, 400)
        x = F.relu(self.fc1(x))                 # (B, 120)
        x = F.relu(self.fc2(x))                 # (B, 84)
        return self.fc3(x)                      # (B, num_classes)


class BatchNormCNN(nn.Module):
    """Three blocks of 3x3 convolutions with BatchNorm and ReLU, each block ending in a 2x2
    max-pool (widths w, 2w, 4w), and one linear layer on the flattened 3x3 maps: a compact network
    that BatchNorm lets train at high learning rates. (A global max-pool instead of the flattening
    lost the digits' layout: one seed in five of `fast` ended at 97.5%.)

    Not from the tutorials: the network of the `fast` recipe (one convolution per block) and of
    `best` (two).
    """

    def __init__(self, width: int = 32, convs_per_block: int = 1, num_classes: int = NUM_CLASSES):
        super().__init__()
        # Flat names (conv1, bn1, ..., pool1, ...), as in the other networks' summaries, plots and
        # checkpoints; forward finds the layers by these names.
        self.convs_per_block = convs_per_block
        in_channels, n = 1, 0
        for block, out_channels in enumerate((width, 2 * width, 4 * width), start=1):
            for _ in range(convs_per_block):
                n += 1
                # No convolution biases: each BatchNorm's shift does their job.
                self.add_module(f"conv{n}", Conv2d(in_channels, out_channels, 3, bias=False))
                self.add_module(f"bn{n}", nn.BatchNorm2d(out_channels))
                in_channels = out_channels
            self.add_module(f"pool{block}", MaxPool2d(2, 2, "VALID"))
        self.fc = nn.Linear(in_channels * 3 * 3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, 28, 28) -> (B, w, 14, 14) -> (B, 2w, 7, 7) -> (B, 4w, 3, 3) at the three pools.
        for n in range(1, 3 * self.convs_per_block + 1):
            x = getattr(self, f"bn{n}")(getattr(self, f"conv{n}")(x))
            if n % self.convs_per_block == 0:
                # ReLU after the pool: the same result as before it (see ConvNet), a quarter of the work.
                x = getattr(self, f"pool{n // self.convs_per_block}")(x)
            x = F.relu(x)
        x = torch.flatten(x, 1)                    # (B, 36w)
        return self.fc(x)                          # (B, num_classes)


class FastCNN(nn.Module):
    """Two VALID convolutions (5x5 to w1 maps, 3x3 to w2), each followed by a 2x2 max-pool, BatchNorm and
    ReLU, then a hidden dense layer: the layout of the fastest public one-epoch MNIST recipe (28 -> 24 ->
    12 -> 10 -> 5), with BatchNorm so that one pass over the data reaches 99%.

    About 1.6 MFLOP forward per image, a tenth of `bn-cnn`'s: on a CPU this is what training time is.
    BatchNorm comes after the pool, on a quarter of the values; the convolutions have no biases, as
    BatchNorm's shift does their job.
    """

    def __init__(self, widths: tuple[int, int] = (16, 32), hidden: int = 128, num_classes: int = NUM_CLASSES):
        super().__init__()
        w1, w2 = widths
        self.conv1 = Conv2d(1, w1, 5, padding="VALID", bias=False)
        self.pool1 = MaxPool2d(2, 2, "VALID")
        self.bn1 = nn.BatchNorm2d(w1)
        self.conv2 = Conv2d(w1, w2, 3, padding="VALID", bias=False)
        self.pool2 = MaxPool2d(2, 2, "VALID")
        self.bn2 = nn.BatchNorm2d(w2)
        self.fc1 = nn.Linear(w2 * 5 * 5, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.pool1(self.conv1(x))))   # (B, w1, 12, 12)
        x = F.relu(self.bn2(self.pool2(self.conv2(x))))   # (B, w2, 5, 5)
        x = F.relu(self.fc1(torch.flatten(x, 1)))         # (B, hidden)
        return self.fc2(x)                                # (B, num_classes)


@register("mlp")
def mlp(**overrides) -> nn.Module:
    """Seed 003's fully connected network 784-500-10."""
    return MLP(**overrides)


@register("lenet5")
def lenet5(**overrides) -> nn.Module:
    """Seed 000's classic LeNet-5 (32x32 padded input, 6/16 VALID convs, 120/84/10)."""
    return LeNet5(**overrides)


@register("tutorial-cnn")
def tutorial_cnn(**overrides) -> nn.Module:
    """Seed 000's mnist_inference: 5x5 SAME convs 32/64, max-pools, fc 512, dropout 0.5."""
    return ConvNet(**{"channels": (32, 64), "hidden": 512, "dropout": 0.5, "conv_bias": 0.0, **overrides})


@register("deep-mnist")
def deep_mnist(**overrides) -> nn.Module:
    """Seed 001's Deep MNIST: convs 32/64, fc 1024, dropout 0.5 (keep_prob 0.5), biases 0.1."""
    return ConvNet(**{"channels": (32, 64), "hidden": 1024, "dropout": 0.5, "conv_bias": 0.1, **overrides})


@register("beginner-cnn")
def beginner_cnn(**overrides) -> nn.Module:
    """Seed 002's network: convs 32/64, fc 1024, no dropout, every weight and bias standard normal."""
    return ConvNet(**{"channels": (32, 64), "hidden": 1024, "dropout": 0.0,
                      "initializer": "standard_normal", **overrides})


@register("layers-cnn")
def layers_cnn(**overrides) -> nn.Module:
    """Seed 004's tf.layers network: convs 32/64, fc 1024, dropout rate 0.4, Glorot init, zero biases."""
    return ConvNet(**{"channels": (32, 64), "hidden": 1024, "dropout": 0.4, "initializer": "glorot_uniform",
                      "conv_bias": 0.0, "fc_bias": 0.0, **overrides})


@register("bn-cnn")
def bn_cnn(**overrides) -> nn.Module:
    """Compact BatchNorm CNN: 3x3 convs 32/64/128, each with BatchNorm, ReLU, max-pool; `fast` until fast-cnn."""
    return BatchNormCNN(**{"width": 32, **overrides})


@register("bn-cnn-wide")
def bn_cnn_wide(**overrides) -> nn.Module:
    """The BatchNorm CNN at twice the width, 3x3 convs 64/128/256 (recipe `best` before `bn-cnn-deep`)."""
    return BatchNormCNN(**{"width": 64, **overrides})


@register("bn-cnn-deep")
def bn_cnn_deep(**overrides) -> nn.Module:
    """The BatchNorm CNN with two 3x3 convolutions per block (VGG-style), 32/64/128; recipe `best`."""
    return BatchNormCNN(**{"width": 32, "convs_per_block": 2, **overrides})


@register("fast-cnn")
def fast_cnn(**overrides) -> nn.Module:
    """Small BatchNorm CNN: 5x5 conv 16, 3x3 conv 32 (VALID), pools, fc 128; recipe `fast` (one pass)."""
    return FastCNN(**overrides)


def l2_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights the tutorials regularize: the fully connected layers' weight matrices
    (seed 000 regularizes fc1/fc2 only; seed 003's MLP has only fully connected weights)."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
