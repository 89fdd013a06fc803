"""Who may use the server: the names a request's Host header may give (so that a page whose DNS name is
rebound to this machine cannot read the API) and the web pages, by origin, that may send it requests (so
that another site cannot make its visitors' browsers post to it). OwnOriginOnly enforces both.

Requests without an Origin header (curl, scripts, the server's own page loading) are not from another
page; the server's own page sends its own origin. Both are allowed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from ..errors import LenetError
from .refusals import error_response

# The names of this machine a browser on it may use, besides the address the request came in on.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses that bind every interface: no client writes them in a Host header.
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443}
ASCII_PORT = re.compile(r"[0-9]{1,5}")
# What an allowed page may ask for in a preflight: the API's methods and the header it sends.
CORS_HEADERS = [(b"access-control-allow-methods", b"GET, POST"), (b"access-control-allow-headers", b"content-type"),
                (b"access-control-max-age", b"600")]


@dataclass(frozen=True)
class Access:
    """HOSTS: names a request's Host header may give besides localhost, 127.0.0.1, [::1] and the address
    the request came in on (the name the server was bound to, each --allow-host). ORIGINS: pages of other
    origins (scheme://host[:port]) allowed to send requests, each --allow-origin."""
    hosts: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()

    def __post_init__(self):
        for host in self.hosts:
            if _name(host) is None:
                raise LenetError(f"--allow-host must be a host name or address, got {host!r}")
        for origin in self.origins:
            if _origin(origin) is None:
                raise LenetError(f"--allow-origin must be an origin such as http://example.org:8080 "
                                 f"(http or https, a host, an optional port, nothing after), got {origin!r}")


class OwnOriginOnly:
    """ASGI middleware: a request whose Host names another server is refused (421), one sent by a page of
    another origin than the server's own or ACCESS's is refused (403); the pages ACCESS allows get the CORS
    headers that let them read the answers, and their preflights are answered."""

    def __init__(self, app, access: Access):
        self.app = app
        self.hosts = {_name(host) for host in LOOPBACK_NAMES + access.hosts} - set(WILDCARD_ADDRESSES)
        self.origins = {_origin(origin) for origin in access.origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[bytes, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, []).append(value.decode("latin-1"))
        refusal = self._host_refusal(headers.get(b"host", []), scope)
        if refusal is None and b"origin" in headers:
            origin = _origin(headers[b"origin"][0]) if len(headers[b"origin"]) == 1 else None
            if origin is not None and origin == _own_origin(headers.get(b"host", []), scope):
                return await self.app(scope, receive, send)
            if origin not in self.origins:
                refusal = error_response(f"requests from the pages of other sites ({headers[b'origin'][0][:100]!r}) "
                                         f"are refused (Origin header): start the server with --allow-origin ORIGIN "
                                         f"to allow a site", 403, close=True)
            else:
                return await self._cors(scope, receive, send, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    def _host_refusal(self, values: list[str], scope) -> JSONResponse | None:
        """The refusal of a request whose Host header names another server or is malformed, else None. A
        request without one (HTTP/1.0; h11 refuses HTTP/1.1 without) is for the address it came in on."""
        if not values:
            return None
        split = _split_host(values[0]) if len(values) == 1 else None
        if split is None:
            return error_response("malformed Host header (one host[:port] expected)", 400, close=True)
        here = _address(scope["server"][0]) if scope.get("server") else None
        if split[0] not in self.hosts | {here}:
            return error_response(f"this server does not answer to the name {split[0][:100]!r} (Host header): use "
                                  f"its address or localhost, or start it with --allow-host NAME", 421, close=True)
        return None

    async def _cors(self, scope, receive, send, headers: dict[bytes, list[str]]) -> None:
        """A request from a page ACCESS allows: its preflight answered, or its answer with the headers that
        let the page read it."""
        allowed = [(b"access-control-allow-origin", headers[b"origin"][0].encode("latin-1")), (b"vary", b"origin")]
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": allowed + CORS_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + allowed}
            await send(message)
        await self.app(scope, receive, send_with_cors)


def _own_origin(host_values: list[str], scope) -> tuple[str, str, int] | None:
    """The server's own origin as the request addressed it (its Host header, else the address it came in on)."""
    scheme = scope["scheme"]
    split = _split_host(host_values[0]) if len(host_values) == 1 else None
    if split is not None:
        return scheme, split[0], split[1] or DEFAULT_PORTS.get(scheme, 80)
    if host_values or not scope.get("server"):
        return None
    return scheme, _address(scope["server"][0]), scope["server"][1]


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port or None) of a Host header's value (an IPv6 address in brackets), the name as _name
    writes it; None when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if rest and not rest.startswith(":"):
        return None
    port = rest[1:]
    if port and (not ASCII_PORT.fullmatch(port) or int(port) > 65535):
        return None
    name = _name(name)
    return None if name is None else (name, int(port) if port else None)


def _name(value: str) -> str | None:
    """A host name or address (an IPv6 one with or without brackets) written one way: lower case, without
    the trailing dot of an absolute DNS name, an address as _address writes it; None if it is neither."""
    name = value.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.removesuffix(".")
    if ":" in name:  # only an IPv6 address has colons here
        return _address(name) if _is_address(name) else None
    if not name or any(c in name for c in "/\\@?#[] "):
        return None
    return _address(name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _address(name: str) -> str:
    """NAME, an IP address written the one way ipaddress writes it (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin header's value (or an --allow-origin), None unless it is an
    http or https origin. "null" (a sandboxed page, a file) is never one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username is not None:
        return None
    host = _name(parts.hostname)
    return None if host is None else (scheme, host, port or DEFAULT_PORTS[scheme])
