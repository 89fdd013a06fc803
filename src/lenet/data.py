"""MNIST on disk and in memory: IDX parsing, checksums, cached download, splits, device tensors."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import LenetError

DATA_DIR_ENV = "LENET_DATA_DIR"

# SHA-256 of the uncompressed IDX files (the files everyone has called MNIST since 1998).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The TensorFlow 1.x reader kept the last 5,000 training images for validation.
VALIDATION_SIZE = 5000

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def gunzip_if_needed(raw: bytes, name: str) -> bytes:
    """RAW itself, or its decompressed content when it starts with the gzip magic bytes."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise LenetError(f"{name}: corrupt gzip data ({error})") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX buffer, checking the magic number, the dimensions and the length."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise LenetError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    if ndim == 0:
        raise LenetError(f"{name}: IDX file declares 0 dimensions")
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise LenetError(f"{name}: IDX header truncated ({len(raw)} bytes, needs {header_bytes})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_bytes + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise LenetError(f"{name}: IDX data length {len(raw)} bytes does not match dimensions "
                         f"{'x'.join(map(str, shape))} ({expected} bytes expected)")
    return np.frombuffer(raw, dtype, offset=header_bytes).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a numpy array, verifying its SHA-256 when given."""
    path = Path(path)
    try:
        raw = gunzip_if_needed(path.read_bytes(), str(path))
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise LenetError(f"{path}: SHA-256 checksum mismatch (file is corrupt or not the MNIST file); "
                         f"delete it and let lenet download it again")
    return parse_idx(raw, str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file (atomically)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise LenetError(f"{path}: only uint8 arrays can be written as IDX, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    atomic_write_bytes(Path(path), header + array.tobytes())


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over the target: a crash leaves
    the old file or the new one, never half of one. Failing (no such directory, no permission, no
    space) is a LenetError naming PATH."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            # Name the file that failed when it is not our temporary (a parent that is a file, say).
            ours = error.filename is None or Path(error.filename).name.startswith(f".{path.name}.")
            culprit = "" if ours else f"{error.filename}: "
            raise LenetError(f"cannot write {path}: {culprit}{error.strerror or error}") from error
        raise


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
                if hashlib.sha256(gzip.decompress(payload)).hexdigest() != MNIST_SHA256[name]:
                    raise ValueError("checksum mismatch")
                target = target_dir / f"{name}.gz"
                atomic_write_bytes(target, payload)
                return target
            except (urllib.error.URLError, OSError, ValueError, EOFError) as error:
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
    arrays = {name: read_idx(path, MNIST_SHA256[name]) for name, path in paths.items()}
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
