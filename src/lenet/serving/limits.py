"""The server's limits: what one request may carry, how long it may take to arrive and to be answered,
and how many requests and connections it holds at once; each default is written here and nowhere else.

Cheap to import (no web server, no torch): the CLI reads these defaults when it builds its options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import LenetError
from ..pictures.decode import MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class Limits:
    """What one request may carry, how long it may take to arrive and to be answered, and how many
    requests (with a body, and in all) and waiting connections the server holds at once."""
    max_body_bytes: int = 4 * 1024 * 1024
    # The picture decoder's own decompression-bomb guard, so that serve and predict refuse the same pictures.
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_batch: int = 64
    # A request's headers and body must all arrive within this of the server starting to wait for it.
    request_timeout_s: float = 10.0
    # Connections with a request in (its headers arrived, its answer not yet sent): past this, a request is
    # answered 503 as soon as its headers are in. Connections still waiting for a request's headers are
    # not counted here (max_waiting_connections), so clients that never finish their headers keep no one out.
    max_connections: int = 128
    # A request's headers must arrive within this (or request_timeout_s if shorter) of the server starting
    # to wait for them. A prompt client sends them in milliseconds; a slow-loris client is dropped early.
    header_timeout_s: float = 5.0
    # Once a request's body is in, its answer (decoding, the network) must be ready within this, else 503.
    compute_timeout_s: float = 10.0
    # Requests with a body, from their headers to their answer: past this, one is answered 503 as soon as
    # its headers are in. So the bodies held at once are at most max_uploads x max_body_bytes (256 MiB at
    # the defaults), and max_connections - max_uploads requests without one (/health, the page) always fit.
    max_uploads: int = 64
    # Connections waiting for a request's headers (new, idle between requests, or slow): past this, the one
    # that has waited longest is closed for the new one. They cost little (h11 holds at most 16 KiB of
    # headers each); the bound keeps the open files, with max_connections, under the usual limit of 1024.
    max_waiting_connections: int = 512

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            option = f"--{f.name.replace('_', '-')}"
            if f.name.endswith("_s"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                    raise LenetError(f"{option} must be a number of seconds above 0 and at most 3600, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LenetError(f"{option} must be at least 1, got {value!r}")
        if self.max_uploads >= self.max_connections:
            raise LenetError(f"--max-uploads must be below --max-connections ({self.max_connections}), so that "
                             f"requests without a body (/health) always find room; got {self.max_uploads}")
