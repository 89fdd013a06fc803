"""Shared fixtures: a tiny synthetic MNIST-shaped dataset, real MNIST when available, trained model dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lenet.data import DATA_DIR_ENV, Mnist, load_mnist
from lenet.recipes import get_recipe, override
from lenet.training import train

torch.set_num_threads(min(2, os.cpu_count() or 1))


def synthetic_mnist(per_split: int = 600, seed: int = 0) -> Mnist:
    """Noise images in which class c lights a 6x6 square at a class-specific place: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)

    def split(n: int):
        labels = torch.randint(0, 10, (n,), generator=generator)
        images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.uint8)
        for c in range(10):
            row, col = 2 + (c // 5) * 12, 2 + (c % 5) * 5
            images[labels == c, row:row + 6, col:col + 6] = 255
        return images, labels

    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = split(per_split), split(per_split // 4), split(per_split // 4)
    return Mnist(tr_x, tr_y, va_x, va_y, te_x, te_y, sha256={"synthetic": "none"})


@pytest.fixture(scope="session")
def synthetic() -> Mnist:
    return synthetic_mnist()


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """Real MNIST from $LENET_DATA_DIR (CI points it at the verified files)."""
    if not os.environ.get(DATA_DIR_ENV):
        pytest.skip(f"real MNIST needs {DATA_DIR_ENV} pointing at the IDX files")
    return load_mnist(download=False)


@pytest.fixture(scope="session")
def synthetic_model_dir(tmp_path_factory, synthetic) -> Path:
    """A small MLP trained on the synthetic data: enough for format and plumbing tests."""
    model_dir = tmp_path_factory.mktemp("synthetic-mlp")
    recipe = override(get_recipe("mlp-ema"), total_steps=60, batch_size=50, learning_rate=0.1,
                      log_every_steps=20, eval_every_steps=60, checkpoint_every_steps=60)
    train(recipe, model_dir, synthetic)
    return model_dir


@pytest.fixture(scope="session")
def mnist_model_dir(tmp_path_factory, mnist) -> tuple[Path, dict]:
    """tutorial-cnn trained a few hundred steps on real MNIST (a smoke-test override: Adam 1e-3, no EMA)."""
    model_dir = tmp_path_factory.mktemp("mnist-cnn")
    recipe = override(get_recipe("tutorial-cnn"), total_steps=300, optimizer="adam", learning_rate=1e-3,
                      ema_decay=0.0, log_every_steps=100, eval_every_steps=300, checkpoint_every_steps=300)
    result = train(recipe, model_dir, mnist)
    return model_dir, result
