"""The server's limits: what one request may carry, how long it may take to arrive, and how many
connections may be open; each default is written here and nowhere else.

Cheap to import (no web server, no torch): the CLI reads these defaults when it builds its options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import LenetError
from ..pictures.decode import MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class Limits:
    """What one request may carry and how long it may take to arrive, and how many connections may be open."""
    max_body_bytes: int = 4 * 1024 * 1024
    # The picture decoder's own decompression-bomb guard, so that serve and predict refuse the same pictures.
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_batch: int = 64
    # A request's headers and body must all arrive within this of the server starting to wait for it.
    request_timeout_s: float = 10.0
    # Connections past this are answered 503 and closed at once. With the deadline, the bodies stalled
    # clients can make the server hold are at most max_connections x max_body_bytes (256 MiB at the
    # defaults), each for at most request_timeout_s.
    max_connections: int = 64

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            option = f"--{f.name.replace('_', '-')}"
            if f.name.endswith("_s"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                    raise LenetError(f"{option} must be a number of seconds above 0 and at most 3600, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LenetError(f"{option} must be at least 1, got {value!r}")
