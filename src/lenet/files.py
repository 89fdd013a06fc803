"""Files lenet writes and reads back: atomic writes; regular files, JSON objects and weights read with checks."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import LenetError

# The most any file lenet reads may hold: far above what it writes or takes (a model's weights are a
# few MB, all 60,000 MNIST training images 47 MB), far below what would exhaust memory.
MAX_FILE_BYTES = 1024 * 1024 * 1024


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


def read_file_bytes(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The content of the regular file PATH (through any symlink), refused over MAX_BYTES. Anything else,
    or a file that cannot be read, is a LenetError naming PATH: /dev/zero never ends and a FIFO blocks
    until someone writes, so both are refused before a byte is read."""
    try:
        # O_NONBLOCK: opening a FIFO to read would otherwise wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LenetError(f"{path}: not a regular file (a device, FIFO, socket or directory); refused")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > max_bytes:
            raise LenetError(f"{path}: {info.st_size:,} bytes, over the limit of {max_bytes:,}; refused")
        try:
            payload = f.read(max_bytes + 1)  # the file may grow while it is read
        except OSError as error:
            raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    if len(payload) > max_bytes:
        raise LenetError(f"{path}: over the limit of {max_bytes:,} bytes; refused")
    return payload


def check_finite_weights(weights: Iterable[tuple[str, np.ndarray]], origin: str) -> None:
    """Refuse weights holding NaN or infinite values: the one check for a checkpoint's tensors and an
    ONNX file's alike, made when they are loaded, so a damaged model never answers at all (a checksum
    recomputed to match lets such weights through, and they would predict NaN)."""
    for name, values in weights:
        if not np.isfinite(values).all():
            raise LenetError(f"{origin}: {name} holds NaN or infinite values")


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict:
    """The JSON object in PATH; anything else (unreadable, not JSON, not an object) is a LenetError."""
    try:
        payload = json.loads(read_file_bytes(path))
    except (ValueError, UnicodeDecodeError) as error:  # ValueError: also integers of over 4,300 digits
        raise LenetError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:  # json's parser recurses once per nesting level
        raise LenetError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(payload, dict):
        raise LenetError(f"{path}: expected a JSON object")
    return payload
