"""The connection limits uvicorn lacks: a deadline for reading each request and a bound on open
connections (BoundedProtocol)."""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import Limits


class BoundedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the two limits uvicorn lacks: a deadline for reading each request
    (uvicorn has none, so a client stalled in its headers or body holds the connection for ever) and a
    bound on open connections (uvicorn's limit_concurrency answers 503 only once a request's headers are
    in, so it never counts the stalled)."""

    def __init__(self, *args, limits: Limits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            message = json.dumps({"error": f"over {self.limits.max_connections} open connections: try again"})
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(message), message.encode()))
            transport.close()
            return
        self._watch_reading()

    def connection_lost(self, exc) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_reading()

    def _reading(self) -> bool:
        """Whether a request is awaited or half in (h11's IDLE and SEND_BODY: the client's turn)."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()

    def _watch_reading(self) -> None:
        """The deadline runs from when the server starts waiting for a request until it is all in. h11's
        state is checked after every batch of bytes read, so a new request (or a pipelined one) starts it."""
        if not self._reading():
            self._stop_deadline()
        elif self.read_deadline is None:
            self.read_deadline = self.loop.call_later(self.limits.request_timeout_s, self._drop)

    def _stop_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _drop(self) -> None:
        self.read_deadline = None
        if self._reading():  # the app waiting for the body sees a disconnect and answers no one
            self.transport.close()
