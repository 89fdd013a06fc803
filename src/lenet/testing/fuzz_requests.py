"""Seeded malformed requests to the server app, called in-process (no sockets), and the figures of a run.

Every request is built from a seeded generator: bad paths, methods, query strings, headers and content
types; multipart bodies broken in every way; JSON of wrong types, shapes, sizes and nesting; damaged
and truncated pictures of each format Pillow writes; huge declared lengths; bodies arriving in pieces.
A case fails when the app raises (a traceback), answers 5xx, takes over HANG_S, or answers wrongly:
a status other than the one the case must get, an error that is not one line of JSON, or a 200 whose
probabilities, class or top_k do not add up. benchmarks/fuzzing/fuzz.py --kind requests runs it at
scale (without --model-dir it serves a tiny MLP trained for a few steps on noise: the answers' content
does not matter); tests/test_serving.py runs it briefly.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lenet.serving.app import create_app
from lenet.serving.limits import Limits
from lenet.testing import SAMPLE_PNG

HANG_S = 10.0
LIMITS = Limits(max_body_bytes=200_000, max_image_pixels=1_000_000, max_batch=8)
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "TGA", "PPM")
ENDPOINTS = ("/predict", "/predict/batch", "/read")


async def asgi_request(app, method: str, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] = (),
                       chunks: list[bytes] = (b"",), leaves: bool = False) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, headers, body) of one request to the ASGI APP, its body arriving as CHUNKS; when LEAVES,
    the client disconnects after them, before the body is complete."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode("utf-8", "replace"),
             "query_string": query, "root_path": "", "headers": [(k.lower(), v) for k, v in headers],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    pending = list(chunks) or [b""]

    async def receive():
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or leaves}
        if leaves:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)  # as a server does: the next message is the client leaving

    answer = {"status": None, "headers": {}, "body": b""}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["headers"], answer["body"]


def tiny_model(directory: Path) -> Path:
    """An MLP trained a few steps on noise, in DIRECTORY: a model to serve, of no accuracy."""
    import torch
    from lenet.data import Dataset
    from lenet.recipes import get_recipe, override
    from lenet.training import train
    generator = torch.Generator().manual_seed(0)

    def split(n):
        return torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8), torch.arange(n) % 10
    dataset = Dataset(*split(100), *split(20), *split(20), sha256={"noise": "none"})
    recipe = override(get_recipe("mlp-ema"), total_steps=4, batch_size=20, log_every_steps=4, eval_every_steps=4,
                      checkpoint_every_steps=4)
    train(recipe, directory, dataset, tensorboard=False)
    return directory


def _digit_picture(rng: random.Random) -> Image.Image:
    """A small dark stroke on light paper: cheap to decode and normalize, and has ink."""
    side = rng.choice([24, 40, 64])
    image = Image.new("L", (side, side), 255)
    x = rng.randrange(side // 4, side // 2)
    ImageDraw.Draw(image).line((x, side // 8, x + rng.randrange(side // 4), side - side // 8), fill=0, width=3)
    return image


def _encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB" if image_format in ("JPEG", "PPM") else "L").save(buffer, format=image_format)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims WIDTHxHEIGHT (its CRC right), with one row of data: a decompression bomb's start."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    data = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data)))


def _mutated(payload: bytes, rng: random.Random) -> bytes:
    body = bytearray(payload)
    how = rng.randrange(4)
    if how == 0:  # a few bytes changed
        for _ in range(rng.randrange(1, 12)):
            body[rng.randrange(len(body))] = rng.randrange(256)
    elif how == 1:  # truncated
        del body[rng.randrange(len(body)):]
    elif how == 2:  # a stretch repeated or inserted
        at = rng.randrange(len(body))
        body[at:at] = body[at:at + rng.randrange(1, 200)] * rng.randrange(1, 8)
    else:  # a stretch removed
        at = rng.randrange(len(body))
        del body[at:at + rng.randrange(1, 64)]
    return bytes(body)


def _json_value(rng: random.Random, depth: int = 0):
    """A JSON text of any shape, weighted toward lists of lists of numbers, with what json.dumps never writes."""
    kind = rng.randrange(12 if depth < 3 else 7)
    if kind == 0:
        return rng.choice(["0", "1", "-1", "255", "1e999", "-1e999", "NaN", "Infinity", "-0", "1" * rng.choice([20, 310, 5000]),
                           "null", "true", "false", '"0.5"', '"\\ud800"', '"\\u0000"', "{}", "[]",
                           "[" * rng.choice([2, 40, 5000]), "0." + "1" * 400, "1e-400"])
    if kind <= 6:
        return repr(rng.choice([rng.random(), 0.0, 1.0, 0, 1, rng.uniform(-2, 3)]))
    if kind <= 10:
        length = rng.choice([0, 1, 27, 28, 28, 28, 29, 784, 3])
        # Long lists only near the top: deeper ones would make bodies of megabytes, refused unread.
        length = length if depth == 0 else min(length, 29 if depth == 1 else 3)
        return "[" + ",".join(_json_value(rng, depth + 1) for _ in range(length)) + "]"
    return "{" + f'"{rng.choice(["image", "images", "x"])}": ' + _json_value(rng, depth + 1) + "}"


def _image_rows(rng: random.Random, cell) -> list:
    return [[cell() for _ in range(28)] for _ in range(28)]


def _multipart(rng: random.Random, payloads: list[bytes]) -> tuple[bytes, bytes]:
    """A multipart/form-data body of PAYLOADS, broken in one of many ways (or not), and its content type."""
    boundary = rng.choice(["b", "x" * 70, "x" * 200, "a b", "--", "bound\u00e9ry", "", "\"q\""]) if rng.random() < 0.2 \
        else "lenet-fuzz"
    newline = b"\n" if rng.random() < 0.05 else b"\r\n"
    field = rng.choice(["file", "file", "file", "other", "", "f\"ile"])
    parts = []
    for payload in payloads:
        disposition = rng.choice([f'form-data; name="{field}"; filename="a.png"', f'form-data; name="{field}"',
                                  'form-data; filename="a.png"', "attachment", "", f'form-data; name="{field}"; '
                                  f'filename="{"é" * rng.randrange(300)}"', 'form-data; name=file; filename=a.png'])
        lines = [b"--" + boundary.encode("utf-8", "replace")]
        if rng.random() > 0.05:
            lines.append(b"Content-Disposition: " + disposition.encode("utf-8", "replace"))
        if rng.random() < 0.3:
            lines.append(b"Content-Type: " + rng.choice([b"image/png", b"text/plain", b"", b"\xff\xfe"]))
        if rng.random() < 0.05:
            lines.append(b"X-Long: " + b"y" * rng.choice([1000, 100_000]))
        head = newline.join(lines) + (newline * 2 if rng.random() > 0.05 else newline)
        parts.append(head + payload + newline)
    closing = rng.choice([b"--" + boundary.encode("utf-8", "replace") + b"--" + newline] * 6 + [b"", b"--", b"--" +
                                                                                                boundary.encode()])
    body = b"".join(parts) + closing
    if rng.random() < 0.1:
        body = _mutated(body, rng) if body else body
    params = rng.choice([f"; boundary={boundary}"] * 6 + ["", "; boundary=", f'; boundary="{boundary}"',
                                                           f"; charset=utf-8; boundary={boundary}", "; boundary=other"])
    return body, ("multipart/form-data" + params).encode("utf-8", "replace")


class _Case:
    """One request and what its answer must be: EXPECT a set of statuses, or None for any below 500."""

    def __init__(self, method="POST", path="/predict", query=b"", headers=None, body=b"", expect=None, k=3):
        self.method, self.path, self.query, self.body, self.expect, self.k = method, path, query, body, expect, k
        self.headers = list(headers or [])


def _random_case(rng: random.Random, pictures: dict[str, bytes], seven: bytes) -> _Case:
    kind = rng.randrange(14)
    endpoint = rng.choice(ENDPOINTS)
    if kind == 0:  # a good request: it must be answered, and the answer must add up
        k = rng.randrange(1, 11)
        image_format = rng.choice(list(pictures))
        return _Case(path="/predict", query=f"top_k={k}".encode(), body=pictures[image_format],
                     headers=[(b"content-type", b"image/png")], expect={200}, k=k)
    if kind == 1:  # a damaged or truncated picture of any format, to any endpoint
        image_format = rng.choice(list(pictures) + ["seven"])
        payload = seven if image_format == "seven" else pictures[image_format]
        content_type = rng.choice([b"image/png", b"image/jpeg", b"application/octet-stream", b"image/webp"])
        return _Case(path=endpoint, body=_mutated(payload, rng), headers=[(b"content-type", content_type)])
    if kind == 2:  # a picture claiming more pixels than the limit: 413, whatever the endpoint
        width, height = rng.choice([(1001, 1000), (20_000, 20_000), (65_535, 65_535), (2 ** 31 - 1, 2 ** 31 - 1)])
        return _Case(path=endpoint, body=_png_claiming(width, height), headers=[(b"content-type", b"image/png")],
                     expect={413})
    if kind == 3:  # JSON of any shape
        text = _json_value(rng)
        if rng.random() < 0.8:
            text = f'{{"{rng.choice(["image", "images"])}": {text}}}'
        if rng.random() < 0.1:
            text = text[:rng.randrange(len(text) + 1)]
        return _Case(path=rng.choice(["/predict", "/predict/batch"]), body=text.encode("utf-8", "surrogatepass"),
                     headers=[(b"content-type", b"application/json")])
    if kind == 4:  # images made of what JSON has but is no number: always 400
        cell = rng.choice([lambda: "0.5", lambda: True, lambda: False, lambda: None, lambda: [0.5], lambda: {}])
        rows = _image_rows(rng, lambda: 0.5)
        rows[rng.randrange(28)][rng.randrange(28)] = cell()
        batch = rng.random() < 0.5
        payload = {"images": [rows]} if batch else {"image": rows}
        return _Case(path="/predict/batch" if batch else "/predict", body=json.dumps(payload).encode(),
                     headers=[(b"content-type", b"application/json")], expect={400})
    if kind == 5:  # multipart broken in every way
        payloads = [rng.choice([seven, pictures["PNG"], _mutated(pictures["PNG"], rng), b"", b"x" * 10])
                    for _ in range(rng.choice([0, 1, 1, 2, 9, 20]))]
        body, content_type = _multipart(rng, payloads)
        return _Case(path=endpoint, body=body, headers=[(b"content-type", content_type)])
    if kind == 6:  # query strings: a bad top_k or include_input with a good picture is a 400
        value = rng.choice(["00", "11", "-1", "1e1", "%C2%B2", "%D9%A1", "%EF%BC%91", "", "%00", "1" * 5000, "3 ",
                            " 3", "0x3", "+3", "3.0", "%ff", "nan", "2" + "0" * 40])
        name = rng.choice(["top_k", "include_input"])
        query = f"{name}={value}".encode() + rng.choice([b"", b"&top_k=2", b"&&", b"&=", b"&include_input=1"])
        return _Case(path=rng.choice(["/predict", "/read"]), query=query, body=pictures["PNG"],
                     headers=[(b"content-type", b"image/png")], expect={400} if b"&" not in query[len(name):] else None)
    if kind == 7:  # a declared length over the limit: 413 before any byte is read
        declared = rng.choice([str(LIMITS.max_body_bytes + 1), "9" * 30, "1" * 5000, "0" * 50 + "300001"])
        return _Case(path=endpoint, body=b"x" * rng.randrange(100), expect={413},
                     headers=[(b"content-type", b"image/png"), (b"content-length", declared.encode())])
    if kind == 8:  # a malformed declared length: 400
        declared = rng.choice([b"-1", b"\xb2", b"1_000", b" 12", b"0x10", b"", b"1e3", b"12abc", "١٢".encode()])
        return _Case(path=endpoint, body=seven, expect={400},
                     headers=[(b"content-type", b"image/png"), (b"content-length", declared)])
    if kind == 9:  # a body over the limit without a declared length: 413
        return _Case(path=endpoint, body=b"\0" * (LIMITS.max_body_bytes + 1 + rng.randrange(1000)),
                     headers=[(b"content-type", b"image/png")], expect={413})
    if kind == 10:  # bad paths and methods
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST", "BREW", "get", ""])
        path = rng.choice(["/predict", "/predict/", "/predict/batch/x", "/Predict", "/", "//",
                           "/static/../serving/app.py", "/static/%2e%2e/serving/app.py", "/static/", "/static/app.js",
                           "/health", "/model", "/read", "/" + "a" * 5000, "/\x00", "/é", "/%"])
        return _Case(method=method, path=path, body=rng.choice([b"", seven]),
                     headers=[(b"content-type", b"image/png")])
    if kind == 11:  # content types, headers of no meaning or too many
        content_type = rng.choice([b"", b"text/plain", b"image/png; charset=utf-8", b"IMAGE/PNG", b"image/svg+xml",
                                   b"application/json; charset=latin-1", b"multipart/mixed", b"\xff\xfe",
                                   b"application/json" * 500, b";;;", b"image/"])
        headers = [(b"content-type", content_type)] + [(b"x-%d" % i, b"v" * rng.randrange(50))
                                                        for i in range(rng.choice([0, 3, 300]))]
        if rng.random() < 0.3:
            headers.append((b"content-type", b"application/json"))  # a second, contradicting one
        return _Case(path=endpoint, body=rng.choice([seven, b'{"image": []}', b""]), headers=headers)
    if kind == 12:  # the batch over its limit in JSON: 413
        images = [_image_rows(rng, lambda: 0.0)] * (LIMITS.max_batch + 1 + rng.randrange(3))
        return _Case(path="/predict/batch", body=json.dumps({"images": images}).encode(),
                     headers=[(b"content-type", b"application/json")], expect={413})
    # Good JSON, in every accepted form: it must be answered.
    rows = _image_rows(rng, lambda: rng.choice([0, 1, 0.0, 0.25, 1.0]))
    image = rows if rng.random() < 0.5 else [x for row in rows for x in row]
    return _Case(path="/predict", body=json.dumps({"image": image}).encode(),
                 headers=[(b"content-type", b"application/json")], expect={200})


def _answer_problem(case: _Case, status: int, headers: dict, body: bytes, num_classes: int) -> str | None:
    """Why this answer is wrong for CASE, or None."""
    if case.expect is not None and status not in case.expect:
        return f"status {status}, expected {sorted(case.expect)}"
    if 300 <= status < 400 or (status in (200, 304) and case.method != "POST"):  # redirects, page, static files
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return f"status {status} with a body that is not JSON: {body[:80]!r}"
    if status != 200:
        error = payload.get("error") if isinstance(payload, dict) else None
        return None if isinstance(error, str) and error and "\n" not in error else f"bad error answer {payload!r:.100}"
    for answer in payload.get("predictions", [payload]) if "digits" not in payload else payload["digits"]:
        if answer["verdict"] in ("no ink", "several digits"):  # answered before the network saw anything
            if answer["class"] is not None or answer["probabilities"] is not None:
                return f"a picture the network never saw with a class or probabilities: {answer!r:.200}"
            continue
        probabilities = np.asarray(answer["probabilities"])
        answered = answer["verdict"] in ("digit", "item")
        if len(probabilities) != num_classes or not np.isfinite(probabilities).all() \
                or abs(probabilities.sum() - 1) > 1e-4 or answer["top_k"][0]["class"] != int(probabilities.argmax()) \
                or answer["class"] != (int(probabilities.argmax()) if answered else None):
            return f"probabilities that do not add up: {answer!r:.200}"
        if case.path == "/predict" and case.expect == {200} and len(answer["top_k"]) != case.k:
            return f"top_k of {len(answer['top_k'])}, asked {case.k}"
    return None


async def _fuzz(app, cases: int, seed: int, num_classes: int) -> dict:
    rng = random.Random(seed)
    seven = SAMPLE_PNG.read_bytes()
    pictures = {f: _encoded(_digit_picture(random.Random(i)), f) for i, f in enumerate(FORMATS)}
    counts = {"cases": cases, "tracebacks": 0, "server_errors_5xx": 0, "hangs": 0, "wrong_answers": 0}
    examples: list[str] = []
    statuses: dict[str, int] = {}
    for _ in range(cases):
        case = _random_case(rng, pictures, seven)
        body = case.body
        # Sometimes the body arrives in pieces, as it does from a socket.
        cuts = sorted(rng.randrange(len(body) + 1) for _ in range(rng.choice([0, 0, 0, 1, 5])))
        chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
        failure = None
        try:
            status, headers, answer = await asyncio.wait_for(
                asgi_request(app, case.method, case.path, case.query, case.headers, chunks), HANG_S)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status >= 500:
                counts["server_errors_5xx"] += 1
                failure = f"{status}: {answer[:200]!r}"
            else:
                failure = _answer_problem(case, status, headers, answer, num_classes)
                counts["wrong_answers"] += failure is not None
        except asyncio.TimeoutError:
            counts["hangs"] += 1
            failure = "no answer"
        except Exception as error:  # noqa: BLE001 -- counting them is the point
            counts["tracebacks"] += 1
            failure = f"{type(error).__name__}: {error}"
        if failure and len(examples) < 20:
            examples.append(f"{case.method} {case.path}?{case.query[:60]!r} {case.headers[:2]!r:.120} "
                            f"{body[:80]!r}: {failure}")
    return counts | {"statuses": dict(sorted(statuses.items())), "failures": examples}


def fuzz_requests(cases: int, seed: int, model_dir: str | Path | None = None) -> dict:
    """Counts of cases, tracebacks, server_errors_5xx, hangs and wrong_answers over CASES seeded requests."""
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # it warns of each broken body it reads
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(model_dir or tiny_model(Path(scratch) / "model"), LIMITS)

        async def run():
            async with app.router.lifespan_context(app):
                return await _fuzz(app, cases, seed, len(json.loads(
                    (await asgi_request(app, "GET", "/model"))[2])["classes"]))
        start = time.perf_counter()
        result = asyncio.run(run())
    return result | {"seconds": round(time.perf_counter() - start, 1)}

