"""Files lenet writes and reads back: atomic writes, the one rule for which paths a writer may take;
regular files, JSON objects and weights read with checks."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import LenetError

# The most any file lenet reads may hold: far above what it writes or takes (a model's weights are a
# few MB, all 60,000 MNIST training images 47 MB), far below what would exhaust memory.
MAX_FILE_BYTES = 1024 * 1024 * 1024

# A model directory's own files, which training (checkpoint.py, tensorboard.py) writes and nothing else may.
RECIPE_FILE, LOCK_FILE, EVENTS_DIR = "recipe.json", "train.lock", "events"
_CHECKPOINT_FILE = re.compile(r"^(?:model|state)-\d+\.")  # model-N.json, model-N.safetensors, state-N.safetensors
SIDECAR_FILE = re.compile(r"^model-(\d+)\.json$")  # a checkpoint exists exactly when its sidecar does

# What lenet's writers write, named for the errors; check_output_path lets one replace only a file of its kind.
OUTPUT_KINDS = {"onnx": "ONNX file", "pt2": "torch.export archive", "torchscript": "TorchScript archive",
                "png": "PNG picture", "idx": "IDX file"}
# The tags that may follow an ONNX ModelProto's first field (see _begins_as).
_ONNX_SECOND_TAGS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42\x72\x7a\xa2")


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


def is_model_dir(directory: Path) -> bool:
    """Whether DIRECTORY holds a training run's files: its recipe, its lock or a checkpoint."""
    return (directory / RECIPE_FILE).exists() or (directory / LOCK_FILE).exists() or \
        (directory.is_dir() and any(SIDECAR_FILE.match(p.name) for p in directory.iterdir()))


def check_output_path(path: str | Path, kind: str) -> Path:
    """PATH, where a writer of KIND (one of OUTPUT_KINDS) may write; the rule every writer but training's own
    goes by. Refused: a model directory's own files (model-N.*, state-N.*, recipe.json, train.lock,
    anything under events/), and an existing file that is not a KIND (writing over an earlier one of the
    same kind is fine; an empty file holds nothing to lose)."""
    assert kind in OUTPUT_KINDS, kind
    path = Path(path)
    try:
        # The rename replaces the last component itself (even a symlink), in the real parent directory.
        parent = path.parent.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise LenetError(f"cannot write {path}: {error}") from None
    if parent.exists() and not parent.is_dir():
        raise LenetError(f"cannot write {path}: {path.parent} is a file, not a directory")
    name = path.name
    if (_CHECKPOINT_FILE.match(name) or name in (RECIPE_FILE, LOCK_FILE, EVENTS_DIR)) and is_model_dir(parent):
        raise LenetError(f"{path}: one of the model directory {parent}'s own files (checkpoints, {RECIPE_FILE}, "
                         f"{LOCK_FILE}, {EVENTS_DIR}/); refused, write elsewhere")
    for directory in (parent, *parent.parents):
        if directory.name == EVENTS_DIR and is_model_dir(directory.parent):
            raise LenetError(f"{path}: inside the model directory {directory.parent}'s event files; "
                             f"refused, write elsewhere")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as error:
        raise LenetError(f"cannot write {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise LenetError(f"{path}: exists and is not a regular file (a directory, device, FIFO or socket); refused")
    if info.st_size and not _is_kind(path, kind):
        raise LenetError(f"{path}: exists and is not a {OUTPUT_KINDS[kind]} (lenet writes over an earlier one "
                         f"only); refused, choose another name or remove the file")
    return path


def _is_kind(path: Path, kind: str) -> bool:
    """Whether the existing regular file PATH is a KIND, from its first bytes (and an archive's member names)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if kind in ("pt2", "torchscript"):
        return head.startswith(b"PK\x03\x04") and _archive_kind(path) == kind
    return _begins_as(kind, head)


def _begins_as(kind: str, head: bytes) -> bool:
    """Whether a file beginning with the bytes HEAD is a "png", an "idx" or an "onnx" file."""
    if kind == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if kind == "idx":  # IDX's magic number starts with two zero bytes; a .gz with gzip's magic
        return head[:2] in (b"\x00\x00", b"\x1f\x8b")
    # An ONNX ModelProto: field 1 (ir_version, a small varint), then the tag of another of its fields. A
    # safetensors file may start with byte 08 too (its header length's low byte), but not with all three.
    return len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_SECOND_TAGS


def _archive_kind(path: Path) -> str | None:
    """"torchscript" or "pt2" for a zip archive torch.jit.save or torch.export.save wrote (read from its
    list of members, nothing unpickled), else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/archive_format") or n.endswith("serialized_exported_program.json") for n in names):
        return "pt2"
    return None


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
