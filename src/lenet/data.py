"""MNIST on disk and in memory: checksums, cached download, splits, device tensors (the file format: idx.py)."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import LenetError
from .files import atomic_write_bytes
from .idx import MAX_UNPACKED_BYTES, gunzip_if_needed, read_idx

DATA_DIR_ENV = "LENET_DATA_DIR"

# SHA-256 of the uncompressed IDX files (the files everyone has called MNIST since 1998).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Their sizes (header + images or labels): a .gz is unpacked no further than this.
MNIST_BYTES = {"train-images-idx3-ubyte": 16 + 60_000 * 784, "train-labels-idx1-ubyte": 8 + 60_000,
               "t10k-images-idx3-ubyte": 16 + 10_000 * 784, "t10k-labels-idx1-ubyte": 8 + 10_000}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The TensorFlow 1.x reader kept the last 5,000 training images for validation.
VALIDATION_SIZE = 5000

def default_cache_dir() -> Path:
    """Where downloaded MNIST files live: $XDG_CACHE_HOME/lenet/mnist or ~/.cache/lenet/mnist."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lenet" / "mnist"


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(name: str, target_dir: Path, retries: int = 3,
              log: Callable[[str], None] | None = None) -> Path:
    """Fetch NAME.gz from the mirrors into target_dir, checking its checksum before the rename."""
    errors = []
    for mirror in MNIST_MIRRORS:
        for attempt in range(retries):
            url = f"{mirror}{name}.gz"
            try:
                if log:
                    log(f"downloading {url}")
                with urllib.request.urlopen(url, timeout=60) as response:
                    payload = response.read()
                if hashlib.sha256(gunzip_if_needed(payload, url, MNIST_BYTES.get(name, MAX_UNPACKED_BYTES))).hexdigest() != MNIST_SHA256[name]:
                    raise ValueError("checksum mismatch")
                target = target_dir / f"{name}.gz"
                atomic_write_bytes(target, payload)
                return target
            except (urllib.error.URLError, OSError, ValueError, EOFError, LenetError) as error:
                errors.append(f"{url}: {error}")
                time.sleep(min(2 ** attempt, 5) if attempt + 1 < retries else 0)
    raise LenetError(f"could not download {name} ({errors[-1]}); put the MNIST files in a directory and pass "
                     f"--data-dir DIR or set {DATA_DIR_ENV}=DIR")


def locate_mnist(data_dir: str | Path | None = None, download: bool = True,
                 log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Find the four MNIST files: --data-dir, then $LENET_DATA_DIR, then the cache (downloading there).

    This is the one place that reads the data-directory environment variable.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if explicit is not None:
        directory = Path(explicit)
        found = {name: _find_file(directory, name) for name in MNIST_SHA256}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            origin = "--data-dir" if data_dir is not None else DATA_DIR_ENV
            raise LenetError(f"{directory} (from {origin}) lacks {', '.join(missing)} (raw or .gz); "
                             f"point --data-dir or {DATA_DIR_ENV} at a directory holding the four MNIST "
                             f"files, or unset both to download into {default_cache_dir()}")
        return found  # type: ignore[return-value]
    cache = default_cache_dir()
    paths = {}
    for name in MNIST_SHA256:
        path = _find_file(cache, name)
        if path is None:
            if not download:
                raise LenetError(f"MNIST file {name} not found; pass --data-dir DIR, set {DATA_DIR_ENV}=DIR, "
                                 f"or allow the download into {cache}")
            path = _download(name, cache, log=log)
        paths[name] = path
    return paths


@dataclass(frozen=True)
class Mnist:
    """The three splits as uint8 image tensors (N, 28, 28) and int64 label tensors (N,)."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    sha256: dict[str, str]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of 'train', 'validation' or 'test'."""
        splits = {"train": (self.train_images, self.train_labels),
                  "validation": (self.val_images, self.val_labels),
                  "test": (self.test_images, self.test_labels)}
        if name not in splits:
            raise LenetError(f"unknown split {name!r}; choose one of {', '.join(splits)}")
        return splits[name]

    def to(self, device: torch.device | str) -> "Mnist":
        """The same dataset with every tensor moved to DEVICE once, so batches are indexed there."""
        moved = {k: getattr(self, k).to(device) for k in
                 ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")}
        return Mnist(**moved, sha256=self.sha256)

    def without_validation(self) -> "Mnist":
        """The same data with the validation images moved into training: none held out."""
        return replace(self, train_images=torch.cat([self.train_images, self.val_images]),
                       train_labels=torch.cat([self.train_labels, self.val_labels]),
                       val_images=self.val_images[:0], val_labels=self.val_labels[:0])


def load_mnist(data_dir: str | Path | None = None, download: bool = True,
               log: Callable[[str], None] | None = None) -> Mnist:
    """Load and verify MNIST, split 55,000/5,000/10,000 like the TensorFlow reader."""
    paths = locate_mnist(data_dir, download, log)
    arrays = {name: read_idx(path, MNIST_SHA256[name], MNIST_BYTES.get(name, MAX_UNPACKED_BYTES)) for name, path in paths.items()}
    images = torch.from_numpy(arrays["train-images-idx3-ubyte"].copy())
    labels = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    split = len(images) - VALIDATION_SIZE
    return Mnist(
        train_images=images[:split], train_labels=labels[:split],
        val_images=images[split:], val_labels=labels[split:],
        test_images=torch.from_numpy(arrays["t10k-images-idx3-ubyte"].copy()),
        test_labels=torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        sha256=dict(MNIST_SHA256),
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1], the networks' input (the TF reader's scaling)."""
    return images.unsqueeze(1).float().div_(255.0)


class BatchOrder:
    """Which training examples each step uses: epoch e is a permutation seeded by (seed, e).

    Each epoch is cut into len // batch_size full batches (the remainder is skipped), so the
    batch of any step follows from the step number alone and resuming needs no sampler state.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if batch_size > num_examples:
            raise LenetError(f"batch_size {batch_size} exceeds the {num_examples} training examples")
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.batches_per_epoch = num_examples // batch_size
        self.device = device
        self._epoch, self._permutation = -1, torch.empty(0)

    def indices(self, step: int) -> torch.Tensor:
        """Indices (on the device) of the training batch for STEP."""
        epoch, batch = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._permutation = torch.randperm(self.num_examples, generator=generator).to(self.device)
            self._epoch = epoch
        return self._permutation[batch * self.batch_size:(batch + 1) * self.batch_size]
