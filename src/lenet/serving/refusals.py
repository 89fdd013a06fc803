"""A refused request: the exception that carries its status and message (BadRequest), and how it is sent,
one line of JSON {"error": message}, as a Starlette response (error_response) or as the bytes written on
a connection before any app has the request (error_bytes), so that both read the same."""

from __future__ import annotations

from http import HTTPStatus

from starlette.responses import JSONResponse


class BadRequest(Exception):
    """A request refused: STATUS (4xx, or 503 when the server is too busy for it) and a one-line message,
    answered as JSON {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_response(message: str, status: int, close: bool = False) -> JSONResponse:
    """The refusal; when CLOSE, the connection is closed after it (the request's body, if any, is not read)."""
    return JSONResponse({"error": message}, status_code=status, headers={"connection": "close"} if close else None)


def error_bytes(status: int, message: str) -> bytes:
    """The refusal as a whole HTTP/1.1 answer that closes the connection."""
    response = error_response(message, status, close=True)
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value for name, value in response.raw_headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body
