"""Shared fixtures: a tiny synthetic MNIST-shaped dataset, real MNIST and Fashion-MNIST when available, a
generated directory of IDX files, trained model dirs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.data import DATA_DIR_ENV, Dataset, load_dataset
from lenet.datasets import CLASSES_FILE, IDX_FILES, KNOWN_DATASETS
from lenet.idx import write_idx
from lenet.recipes import get_recipe, override
from lenet.training import train

torch.set_num_threads(min(2, os.cpu_count() or 1))


def synthetic_mnist(per_split: int = 600, seed: int = 0) -> Dataset:
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
    return Dataset(tr_x, tr_y, va_x, va_y, te_x, te_y, sha256={"synthetic": "none"})


@pytest.fixture(scope="session")
def synthetic() -> Dataset:
    return synthetic_mnist()


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """Real MNIST from $LENET_DATA_DIR (CI points it at the verified files)."""
    if not os.environ.get(DATA_DIR_ENV):
        pytest.skip(f"real MNIST needs {DATA_DIR_ENV} pointing at the IDX files")
    return load_dataset(download=False)


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
    """The `fast` recipe trained on real MNIST, unchanged (one pass: seconds; ~99.2%)."""
    model_dir = tmp_path_factory.mktemp("mnist-cnn")
    result = train(get_recipe("fast"), model_dir, mnist)
    return model_dir, result


@pytest.fixture(scope="session")
def fashion() -> Dataset:
    """Fashion-MNIST from Debian's dataset-fashion-mnist (CI installs it) or $LENET_FASHION_MNIST_DIR."""
    known = KNOWN_DATASETS["fashion-mnist"]
    if not (Path(known.system_dir).is_dir() or os.environ.get(known.env_var)):
        pytest.skip(f"Fashion-MNIST needs Debian's dataset-fashion-mnist or {known.env_var}")
    return load_dataset("fashion-mnist", download=False)


@pytest.fixture(scope="session")
def fashion_model_dir(tmp_path_factory, fashion) -> tuple[Path, dict]:
    """`fast` trained on Fashion-MNIST, its whole schedule (one pass: seconds)."""
    model_dir = tmp_path_factory.mktemp("fashion-fast")
    recipe = override(get_recipe("fast"), dataset="fashion-mnist")
    result = train(recipe, model_dir, fashion, tensorboard=False)
    return model_dir, result


def write_idx_set(directory: Path, num_classes: int = 3, train: int = 480, test: int = 120,
                  classes: list[str] | None = None, seed: int = 0) -> Path:
    """A small data set of the four standard IDX files in DIRECTORY: noise in which class c lights a
    square at its own place (learnable in a few steps); CLASSES go into classes.txt when given."""
    generator = np.random.default_rng(seed)
    arrays = {}
    for images_name, labels_name, n in ((IDX_FILES[0], IDX_FILES[1], train), (IDX_FILES[2], IDX_FILES[3], test)):
        labels = np.arange(n, dtype=np.uint8) % num_classes
        images = generator.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for c in range(num_classes):
            images[labels == c, 4 + 6 * (c // 3):10 + 6 * (c // 3), 4 + 8 * (c % 3):10 + 8 * (c % 3)] = 255
        arrays[images_name], arrays[labels_name] = images, labels
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / name, array)
    if classes is not None:
        (directory / CLASSES_FILE).write_text("\n".join(classes) + "\n")
    return directory
