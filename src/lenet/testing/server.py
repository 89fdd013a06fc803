"""A real `lenet serve` on loopback and the clients that load it, stall it, crowd it and poll its /health.

benchmarks/speed/serve_load.py measures with these at scale; tests/test_server_load.py checks the same small.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir: str | Path, *options: str):
    """(URL, process) of a `lenet serve` for MODEL_DIR with OPTIONS, until the block ends."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lenet.cli", "serve", "--model-dir", str(model_dir),
                                "--port", str(port), *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {process.stdout.read().decode()[-2000:]}")
                time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def post(url: str, path: str, body: bytes, content_type: str, timeout_s: float = 30) -> int:
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def concurrent_clients(url: str, clients: int, requests: int, body: bytes, content_type: str) -> dict:
    """REQUESTS posts of BODY to /predict from CLIENTS threads: errors (anything but a 200), requests/s, latency."""
    def one(_):
        start = time.perf_counter()
        try:
            status = post(url, "/predict", body, content_type)
        except OSError:
            status = None
        return status, time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall_s = time.perf_counter() - start
    latencies_ms = [1000 * s for _, s in results]
    return {"clients": clients, "requests": requests, "errors": sum(status != 200 for status, _ in results),
            "requests_per_s": round(requests / wall_s, 1), "p50_ms": round(float(np.percentile(latencies_ms, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies_ms, 99)), 1)}


class _InBackground:
    """A load that runs in a thread while a `with` block runs: _run until _stop is set, then joined."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class HealthPoller(_InBackground):
    """Asks GET /health every interval_s in a thread while the block runs; latencies_ms of the 200 answers and
    failures (no answer, or another status) after."""

    def __init__(self, url: str, interval_s: float = 0.02):
        self.url, self.interval_s = url, interval_s
        self.latencies_ms: list[float] = []
        self.failures = 0
        super().__init__()

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    response.read()
                    answered = response.status == 200
            except OSError:
                answered = False
            if answered:
                self.latencies_ms.append(1000 * (time.perf_counter() - start))
            else:
                self.failures += 1
            self._stop.wait(self.interval_s)

    def figures(self) -> dict:
        values = self.latencies_ms or [float("inf")]
        return {"health_requests": len(self.latencies_ms), "health_failures": self.failures,
                "health_p50_ms": round(float(np.percentile(values, 50)), 1),
                "health_p99_ms": round(float(np.percentile(values, 99)), 1)}


def address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("/", 1)[1].split(":")
    return host, int(port)


def request_head(url: str, method: str = "POST", path: str = "/predict", *headers: str) -> bytes:
    """A request's line and headers for URL's server, without the blank line that ends them."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.rsplit('/', 1)[1]}", *headers]
    return "".join(line + "\r\n" for line in lines).encode()


def stalled_connection(url: str, where: str, body_bytes: int = 100_000) -> socket.socket:
    """A connection that stops sending: after nothing ("nothing"), half its headers ("headers"), or its
    headers and all of a BODY_BYTES body but its last byte ("body")."""
    connection = socket.create_connection(address(url))
    try:
        if where == "headers":
            connection.sendall(request_head(url, "POST", "/predict", "Content-Type: image/png"))
        elif where == "body":
            connection.sendall(request_head(url, "POST", "/predict", "Content-Type: image/png",
                                            f"Content-Length: {body_bytes}") + b"\r\n" + b"\0" * (body_bytes - 1))
    except OSError:  # refused mid-send (past --max-uploads): seconds_until_dropped sees it closed
        pass
    return connection


def answer_and_close(connection: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """What the server sends on CONNECTION within TIMEOUT_S, and whether it closed the connection after."""
    connection.settimeout(timeout_s)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
        return received, True
    except ConnectionResetError:
        return received, True
    except OSError:  # timed out: still open
        return received, False
    finally:
        connection.close()


class SlowClients(_InBackground):
    """COUNT slow-loris clients while the block runs: each sends a request's headers one byte every
    byte_interval_s, never finishing them, and connects again after reconnect_s or once the server has
    answered or closed its connection. One thread drives them all; opened counts the connections made,
    dropped those the server closed."""

    def __init__(self, url: str, count: int, byte_interval_s: float = 1.0, reconnect_s: float = 10.0):
        self.url, self.count, self.byte_interval_s, self.reconnect_s = url, count, byte_interval_s, reconnect_s
        self.opened = self.dropped = 0
        super().__init__()
        # Headers that never end: after the request line, one header line after another.
        self._head = request_head(url, "GET", "/health") + b"X-Slow: 1\r\n" * 10_000

    def _connect(self) -> list:
        """[the connection (None if refused), bytes sent, when it was made]"""
        self.opened += 1
        try:
            connection = socket.create_connection(address(self.url), timeout=5)
            connection.setblocking(False)
        except OSError:
            connection = None
        return [connection, 0, time.monotonic()]

    def _run(self) -> None:
        clients = [self._connect() for _ in range(self.count)]
        next_byte_at = time.monotonic()
        while not self._stop.wait(0.05):
            now = time.monotonic()
            send = now >= next_byte_at
            next_byte_at += self.byte_interval_s if send else 0
            for i, (connection, sent, since) in enumerate(clients):
                if connection is not None and now - since <= self.reconnect_s and not _heard_from(connection):
                    if not send:
                        continue
                    try:
                        connection.send(self._head[sent:sent + 1])
                        clients[i][1] += 1
                        continue
                    except OSError:
                        pass
                if connection is not None:
                    if now - since <= self.reconnect_s:  # not its own time to reconnect: the server closed it
                        self.dropped += 1
                    connection.close()
                clients[i] = self._connect()
        for connection, _, _ in clients:
            if connection is not None:
                connection.close()

    def figures(self) -> dict:
        return {"slow_clients": self.count, "slow_connections_opened": self.opened,
                "slow_connections_dropped_by_server": self.dropped}


class StalledUploads(_InBackground):
    """COUNT uploads of BODY_BYTES while the block runs, each stalled before its last byte, all opened again
    every reopen_s (those the server refused or dropped included)."""

    def __init__(self, url: str, count: int, body_bytes: int, reopen_s: float = 10.0):
        self.url, self.count, self.body_bytes, self.reopen_s = url, count, body_bytes, reopen_s
        self.opened = 0
        super().__init__()

    def _run(self) -> None:
        while True:
            uploads = [stalled_connection(self.url, "body", self.body_bytes) for _ in range(self.count)]
            self.opened += len(uploads)
            stop = self._stop.wait(self.reopen_s)
            for upload in uploads:
                upload.close()
            if stop:
                return


def _heard_from(connection: socket.socket) -> bool:
    """Whether the server sent something on a connection or closed it (it answers a slow client only to
    refuse it, then closes)."""
    try:
        connection.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def seconds_until_dropped(connections: list[socket.socket], give_up_s: float) -> list[float | None]:
    """For each connection, the seconds (from now) until the server closed it, or None if it did not in GIVE_UP_S."""
    start = time.monotonic()
    dropped: list[float | None] = [None] * len(connections)

    def watch(i: int) -> None:
        connection = connections[i]
        connection.settimeout(give_up_s)
        try:
            while connection.recv(65536):  # what the server answers (if anything) before closing
                pass
            dropped[i] = time.monotonic() - start
        except ConnectionResetError:
            dropped[i] = time.monotonic() - start
        except OSError:  # timed out: still open
            pass
        finally:
            connection.close()
    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dropped
