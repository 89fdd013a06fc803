"""The connection limits uvicorn lacks and HTTP/1.1 framing held to RFC 9112 (BoundedProtocol): deadlines
for a request's headers and for all of it, bounds on the requests in progress and on those whose bodies
are held, connections that wait for their headers counted apart (so slow clients keep no one out), and
the memory of dropped bodies handed back to the system."""

from __future__ import annotations

import asyncio
import ctypes
from typing import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import Limits
from .refusals import BadRequest, error_bytes

# A refused client may still be sending its body: the connection is read (and the bytes dropped) for this
# long after the refusal before it is closed, so that the client reads the answer instead of a reset.
LINGER_S = 1.0
# After a body of this size is dropped, the C allocator is asked to hand freed memory back
# (Shared.release_memory_soon): glibc keeps freed heap pages otherwise, and a crowd of 4 MiB uploads would
# leave the server hundreds of MB larger for good.
RELEASE_AFTER_BODY_BYTES = 1024 * 1024
# At most one release a second, in a thread: it walks the whole heap.
RELEASE_DELAY_S = 1.0


class Shared:
    """What the connections of one server share: those waiting for a request's headers, longest-waiting
    first (the ones closed to make room), those with a request in, and those whose request has a body."""

    def __init__(self):
        self.waiting: dict[BoundedProtocol, None] = {}  # a dict keeps insertion order: the oldest first
        self.requests: set[BoundedProtocol] = set()
        self.with_body: set[BoundedProtocol] = set()
        self.release: asyncio.TimerHandle | None = None

    def release_memory_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.release is None and _MALLOC_TRIM is not None:
            self.release = loop.call_later(RELEASE_DELAY_S, self._release, loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        self.release = None
        loop.run_in_executor(None, _MALLOC_TRIM, 0)


class _Connection(h11.Connection):
    """h11's server side, which calls ADMIT with each request's headers (ADMIT raises BadRequest to refuse it)
    and counts the body bytes received. uvicorn answers an h11 error by calling send_400_response: a
    refusal is raised as one, and kept here for the answer to say what it is."""

    def __init__(self, admit: Callable[[h11.Request], None], max_incomplete_event_size: int | None):
        if max_incomplete_event_size is None:
            super().__init__(h11.SERVER)
        else:
            super().__init__(h11.SERVER, max_incomplete_event_size)
        self.admit = admit
        self.refusal: BadRequest | None = None
        self.body_bytes = 0

    def next_event(self):
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                self.admit(event)
            elif isinstance(event, h11.Data):
                self.body_bytes += len(event.data)
            return event
        except BadRequest as refusal:
            self.refusal = refusal
            raise h11.RemoteProtocolError(str(refusal)) from None
        except h11.RemoteProtocolError as error:  # h11's own: a malformed request, headers over 16 KiB, ...
            self.refusal = self.refusal or BadRequest(error.error_status_hint, f"malformed HTTP request ({error})")
            raise


class BoundedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with deadlines for reading each request (uvicorn has none, so a client
    stalled in its headers or body holds the connection for ever), bounds on the requests in progress and
    on those with a body, counted from their headers (uvicorn's limit_concurrency counts every connection,
    so stalled clients can take every place), and RFC 9112's framing rules."""

    def __init__(self, *args, limits: Limits, shared: Shared, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits, self.shared = limits, shared
        self.conn = _Connection(self._admit, self.config.h11_max_incomplete_event_size)
        self.waiting_since: float | None = None  # when the server began waiting for the next request's headers
        self.request_since = 0.0  # when it began waiting for the request now being read
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_at: float | None = None
        self.lingering = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.shared.waiting) >= self.limits.max_waiting_connections:
            oldest = next(iter(self.shared.waiting))
            oldest._end(503, "closed to make room for another connection: the request's headers came too slowly")
        self._watch()

    def connection_lost(self, exc) -> None:
        self._forget()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.lingering:  # after a refusal the rest of the request is read and dropped
            super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch()

    def on_response_complete(self) -> None:
        self._release_request()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an h11 error, which is how _admit's refusals and h11's own arrive: answered as
        JSON with the refusal's status, and the connection closed (after lingering)."""
        refusal = self.conn.refusal or BadRequest(400, msg)
        self._refuse(refusal.status, str(refusal))

    def _admit(self, request: h11.Request) -> None:
        """Each request's headers, as they arrive: refused (BadRequest) if RFC 9112 says so, past max_connections
        requests, or past max_uploads if it has a body; else the rest of its deadline starts."""
        self.request_since = self.waiting_since if self.waiting_since is not None else self.loop.time()
        self.waiting_since = None
        self.shared.waiting.pop(self, None)
        names = [name for name, _ in request.headers]  # h11 gives them in lower case
        if b"content-length" in names and b"transfer-encoding" in names:
            # RFC 9112 section 6.3: a request smuggling attempt, most likely; the server must close the connection.
            raise BadRequest(400, "a request with both Content-Length and Transfer-Encoding is refused (RFC 9112)")
        if len(self.shared.requests) >= self.limits.max_connections:
            raise BadRequest(503, f"over {self.limits.max_connections} requests at once: try again")
        # h11 has checked both: Transfer-Encoding is "chunked", Content-Length one number.
        if b"transfer-encoding" in names or any(n == b"content-length" and int(v) > 0 for n, v in request.headers):
            if len(self.shared.with_body) >= self.limits.max_uploads:
                raise BadRequest(503, f"over {self.limits.max_uploads} requests with a body at once: try again")
            self.shared.with_body.add(self)
            self.conn.body_bytes = 0
        self.shared.requests.add(self)

    def _watch(self) -> None:
        """Arms the deadline of the request arriving: its headers within header_timeout_s of the server
        starting to wait for them, all of it within request_timeout_s; none while it is answered. h11's state
        is checked after every batch of bytes read, so a new (or pipelined) request starts it."""
        if self.lingering:
            return
        state = self.conn.their_state
        if self.transport.is_closing() or state not in (h11.IDLE, h11.SEND_BODY):
            self.shared.waiting.pop(self, None)
            self._set_deadline(None)
        elif state is h11.IDLE:
            if self.waiting_since is None:
                self.waiting_since = self.loop.time()
                self.shared.waiting[self] = None
            self._set_deadline(self.waiting_since + min(self.limits.header_timeout_s, self.limits.request_timeout_s))
        else:
            self._set_deadline(self.request_since + self.limits.request_timeout_s)

    def _set_deadline(self, at: float | None) -> None:
        if at == self.deadline_at:
            return
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline_at = at
        self.deadline = None if at is None else self.loop.call_at(at, self._expire)

    def _expire(self) -> None:
        self.deadline, self.deadline_at = None, None
        if self.lingering:
            self.transport.close()
        elif self.conn.their_state is h11.IDLE:
            seconds = min(self.limits.header_timeout_s, self.limits.request_timeout_s)
            self._end(408, f"the request's headers did not arrive within {seconds:g} s")
        else:  # the app, waiting for the body, sees the disconnect: its own answer goes nowhere
            self._end(408, f"the request did not arrive within {self.limits.request_timeout_s:g} s")

    def _end(self, status: int, message: str) -> None:
        """Closes the connection, answering STATUS and MESSAGE if part of a request has arrived and no answer
        has begun. A connection on which nothing arrived is closed without one, as an idle keep-alive
        connection is: a client that was about to use it retries on a new one."""
        arrived = self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]
        self._forget()
        if arrived and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(error_bytes(status, message))
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answers STATUS and MESSAGE, then reads and drops what still comes for LINGER_S and closes; at once
        if the app has the request (it may still write, which a half-closed connection would not take)."""
        self._forget()
        self.transport.write(error_bytes(status, message))
        if (self.cycle is not None and not self.cycle.response_complete) or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()  # uvicorn may have paused it while a body waited for the app
        self.lingering = True
        self._set_deadline(self.loop.time() + LINGER_S)

    def _forget(self) -> None:
        """Takes the connection out of what the connections share, and its deadline off."""
        self.shared.waiting.pop(self, None)
        self._release_request()
        self._set_deadline(None)

    def _release_request(self) -> None:
        self.shared.requests.discard(self)
        if self in self.shared.with_body:
            self.shared.with_body.discard(self)
            if self.conn.body_bytes >= RELEASE_AFTER_BODY_BYTES:
                self.shared.release_memory_soon(self.loop)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, which hands the free pages of every heap back to the system; None without
    glibc (musl, macOS), whose allocators behave otherwise."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()
