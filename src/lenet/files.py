"""Files lenet writes and reads back: atomic writes, JSON objects read with checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import LenetError


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


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict:
    """The JSON object in PATH; anything else (unreadable, not JSON, not an object) is a LenetError."""
    try:
        payload = json.loads(path.read_text())
    except OSError as error:
        raise LenetError(f"{path}: cannot read ({error.strerror})") from None
    except (ValueError, UnicodeDecodeError) as error:  # ValueError: also integers of over 4,300 digits
        raise LenetError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:  # json's parser recurses once per nesting level
        raise LenetError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(payload, dict):
        raise LenetError(f"{path}: expected a JSON object")
    return payload
