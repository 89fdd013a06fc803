"""Data sets on disk and in memory: finding, verifying and downloading their files, splits, device
tensors (which sets lenet knows: datasets.py; the file format: idx.py)."""

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

from .datasets import (CLASSES_FILE, DIGITS, IDX_FILES, KNOWN_DATASETS, STANDARD_BYTES, TEST_IMAGES, TEST_LABELS,
                       TRAIN_IMAGES, TRAIN_LABELS, KnownDataset, check_dataset_name, control_character)
from .errors import LenetError
from .files import atomic_write_bytes, check_output_path, read_file_bytes
from .idx import IMAGE_SIZE, gunzip_if_needed, read_idx, read_idx_sha256

# MNIST's variable, kept from before lenet knew other sets; each known set has its own (datasets.py).
DATA_DIR_ENV = KNOWN_DATASETS["mnist"].env_var
# The TensorFlow 1.x reader kept the last 5,000 of the 60,000 training images for validation: one in
# twelve, which is what a data set of another size holds out.
VALIDATION_SHARE = 12
# A class name in classes.txt longer than this is not a name (a wrong file, say).
MAX_CLASS_NAME_CHARS = 100


def default_cache_dir(dataset: str = "mnist") -> Path:
    """Where a known data set's downloaded files live: $XDG_CACHE_HOME/lenet/DATASET or ~/.cache/lenet/DATASET."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lenet" / dataset


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(known: KnownDataset, name: str, target_dir: Path, retries: int = 3,
              log: Callable[[str], None] | None = None) -> Path:
    """Fetch NAME.gz from KNOWN's mirrors into target_dir, checking its checksum before the rename."""
    errors = []
    target = check_output_path(target_dir / f"{name}.gz", "idx")
    for mirror in known.mirrors:
        for attempt in range(retries):
            url = f"{mirror}{name}.gz"
            try:
                if log:
                    log(f"downloading {url}")
                with urllib.request.urlopen(url, timeout=60) as response:
                    payload = response.read()
                content = gunzip_if_needed(payload, url, STANDARD_BYTES[name])
                if hashlib.sha256(content).hexdigest() != known.sha256[name]:
                    raise ValueError("checksum mismatch")
                atomic_write_bytes(target, payload)
                return target
            except (urllib.error.URLError, OSError, ValueError, EOFError, LenetError) as error:
                errors.append(f"{url}: {error}")
                time.sleep(min(2 ** attempt, 5) if attempt + 1 < retries else 0)
    raise LenetError(f"could not download {known.name} file {name} ({errors[-1]}); put the four files in a "
                     f"directory and pass --data-dir DIR or set {known.env_var}=DIR")


def _files_in(directory: Path, origin: str, known: KnownDataset | None) -> dict[str, Path]:
    """The four IDX files in DIRECTORY (named by ORIGIN in the error when some are missing) of the
    KNOWN data set, or of a user's (None)."""
    if not directory.is_dir():
        raise LenetError(f"{directory} (from {origin}): no such directory")
    found = {name: _find_file(directory, name) for name in IDX_FILES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        where = (f"point --data-dir or {known.env_var} at a directory holding the four {known.name} files, or "
                 f"unset both to download into {default_cache_dir(known.name)}") if known else \
            "point --data-dir at a directory holding the four IDX files"
        raise LenetError(f"{directory} (from {origin}) lacks {', '.join(missing)} (raw or .gz); {where}")
    return found  # type: ignore[return-value]


def locate_dataset(dataset: str = "mnist", data_dir: str | Path | None = None, download: bool = True,
                   log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Find DATASET's four files: --data-dir, then the set's variable ($LENET_DATA_DIR for MNIST,
    $LENET_FASHION_MNIST_DIR), then a system package's directory, then the cache (downloading there).
    An "idx" set is only ever DATA_DIR.

    This is the one place that reads the data-directory environment variables.
    """
    check_dataset_name(dataset)
    if dataset == "idx":
        if data_dir is None:
            raise LenetError("--dataset idx needs --data-dir DIR, a directory holding the four IDX files")
        return _files_in(Path(data_dir), "--data-dir", None)
    known = KNOWN_DATASETS[dataset]
    if data_dir is not None:
        return _files_in(Path(data_dir), "--data-dir", known)
    if os.environ.get(known.env_var):
        return _files_in(Path(os.environ[known.env_var]), known.env_var, known)
    if known.system_dir and all(_find_file(Path(known.system_dir), name) for name in IDX_FILES):
        return _files_in(Path(known.system_dir), known.system_dir, known)
    cache = default_cache_dir(dataset)
    paths = {}
    for name in IDX_FILES:
        path = _find_file(cache, name)
        if path is None:
            if not download:
                raise LenetError(f"{dataset} file {name} not found; pass --data-dir DIR, set {known.env_var}=DIR, "
                                 f"or allow the download into {cache}")
            path = _download(known, name, cache, log=log)
        paths[name] = path
    return paths


@dataclass(frozen=True)
class Dataset:
    """The three splits as uint8 image tensors (N, 28, 28) and int64 label tensors (N,), with the
    set's name, its class names (label c is classes[c]) and the SHA-256 of the files read."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    sha256: dict[str, str]
    name: str = "mnist"
    classes: tuple[str, ...] = DIGITS

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of 'train', 'validation' or 'test'."""
        splits = {"train": (self.train_images, self.train_labels),
                  "validation": (self.val_images, self.val_labels),
                  "test": (self.test_images, self.test_labels)}
        if name not in splits:
            raise LenetError(f"unknown split {name!r}; choose one of {', '.join(splits)}")
        return splits[name]

    def to(self, device: torch.device | str) -> "Dataset":
        """The same dataset with every tensor moved to DEVICE once, so batches are indexed there."""
        moved = {k: getattr(self, k).to(device) for k in
                 ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")}
        return replace(self, **moved)

    def without_validation(self) -> "Dataset":
        """The same data with the validation images moved into training: none held out."""
        return replace(self, train_images=torch.cat([self.train_images, self.val_images]),
                       train_labels=torch.cat([self.train_labels, self.val_labels]),
                       val_images=self.val_images[:0], val_labels=self.val_labels[:0])


def load_dataset(dataset: str = "mnist", data_dir: str | Path | None = None, download: bool = True,
                 log: Callable[[str], None] | None = None) -> Dataset:
    """Load DATASET (see locate_dataset), the last twelfth of its training images held out for validation
    (MNIST: 55,000/5,000/10,000 like the TensorFlow reader). A known set's files are verified against
    their checksums; an "idx" set's checksums are recorded instead, and its shapes and labels checked."""
    paths = locate_dataset(dataset, data_dir, download, log)
    if dataset == "idx":
        read = {name: read_idx_sha256(path) for name, path in paths.items()}
        arrays, sha256 = {n: a for n, (a, _) in read.items()}, {n: s for n, (_, s) in read.items()}
        classes = _check_idx_set(arrays, paths, Path(data_dir))
    else:
        known = KNOWN_DATASETS[dataset]
        arrays = {name: read_idx(path, known.sha256[name], STANDARD_BYTES[name]) for name, path in paths.items()}
        sha256, classes = dict(known.sha256), known.classes
    images = torch.from_numpy(arrays[TRAIN_IMAGES].copy())
    labels = torch.from_numpy(arrays[TRAIN_LABELS].astype(np.int64))
    split = len(images) - len(images) // VALIDATION_SHARE
    return Dataset(
        train_images=images[:split], train_labels=labels[:split],
        val_images=images[split:], val_labels=labels[split:],
        test_images=torch.from_numpy(arrays[TEST_IMAGES].copy()),
        test_labels=torch.from_numpy(arrays[TEST_LABELS].astype(np.int64)),
        sha256=sha256, name=dataset, classes=classes,
    )


def _check_idx_set(arrays: dict[str, np.ndarray], paths: dict[str, Path], directory: Path) -> tuple[str, ...]:
    """The class names of a user's IDX set, once its files are what the networks take: uint8 images
    (N, 28, 28), uint8 labels (N,) of 0..K-1 with K read from the training labels (K >= 2): K names in
    classes.txt, or else every label 0..K-1 used by a training image."""
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_name], arrays[labels_name]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise LenetError(f"{paths[images_name]}: expected uint8 images of 28x28, got {images.dtype} of "
                             f"dimensions {'x'.join(map(str, images.shape))}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise LenetError(f"{paths[labels_name]}: expected one uint8 label per image, got {labels.dtype} "
                             f"of dimensions {'x'.join(map(str, labels.shape))}")
        if len(labels) != len(images) or not len(labels):
            raise LenetError(f"{paths[labels_name]}: {len(labels):,} labels for the {len(images):,} images "
                             f"of {paths[images_name].name}")
    classes_path = directory / CLASSES_FILE
    names = _read_class_names(classes_path) if classes_path.exists() else None
    num_classes = int(arrays[TRAIN_LABELS].max()) + 1
    if num_classes < 2:
        raise LenetError(f"{paths[TRAIN_LABELS]}: every label is 0; a classifier needs at least two classes")
    if int(arrays[TEST_LABELS].max()) >= num_classes:
        raise LenetError(f"{paths[TEST_LABELS]}: label {int(arrays[TEST_LABELS].max())} is out of range: the "
                         f"training labels are 0..{num_classes - 1}")
    if names is None:
        # Without names the largest label says how many classes there are: one stray label (255, say)
        # would make a network of 256 outputs, most of them classes no image has.
        unused = np.setdiff1d(np.arange(num_classes), arrays[TRAIN_LABELS])
        if len(unused):
            raise LenetError(f"{paths[TRAIN_LABELS]}: label {num_classes - 1} makes {num_classes} classes, but "
                             f"{len(unused)} of them (label {int(unused[0])}, ...) have no training image; a stray "
                             f"label? (labels are 0..K-1, each used, or named in {CLASSES_FILE})")
        return tuple(str(c) for c in range(num_classes))
    if len(names) != num_classes:
        # Labels beyond the names: say which image has the first, as it may be one stray label.
        beyond = f"; {paths[TRAIN_LABELS]} has label {num_classes - 1} (image " \
                 f"{int(np.argmax(arrays[TRAIN_LABELS] >= len(names)))})" if num_classes > len(names) else ""
        raise LenetError(f"{classes_path}: {len(names)} class names for the {num_classes} classes of the labels "
                         f"(one name per line, in label order){beyond}")
    if len(set(names)) != len(names) or max(map(len, names)) > MAX_CLASS_NAME_CHARS:
        raise LenetError(f"{classes_path}: class names must be distinct and at most {MAX_CLASS_NAME_CHARS} characters")
    return tuple(names)


def _read_class_names(path: Path) -> list[str]:
    """The class names in PATH (classes.txt), one a line, blank lines skipped; refused, naming the line,
    when one holds a control character (a NUL, a terminal's escape sequence)."""
    try:
        text = read_file_bytes(path).decode("utf-8")
    except UnicodeDecodeError as error:
        raise LenetError(f"{path}: cannot read ({error})") from None
    names = []
    # Lines end at \n, \r\n or \r only, so that a line number is the one an editor shows (str.splitlines
    # also ends them at form feeds, \x1c-\x1e and U+2028, which are refused inside a name).
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        name = line.strip()
        if (character := control_character(name)) is not None:
            raise LenetError(f"{path}: line {number}: the class name holds the control character {character}")
        if name:
            names.append(name)
    return names


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
