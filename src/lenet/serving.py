"""The HTTP API and the page (draw a digit, or for other data sets classify a picture): a Starlette
app, served by uvicorn (`lenet serve`).

POST /predict         one image: an upload (raw image/* body or multipart field "file") or JSON
                      {"image": 28x28 numbers in [0, 1]}; ?top_k=K, ?include_input=1
POST /predict/batch   several: multipart files or JSON {"images": [...]}
POST /read            a picture of a number (raw image/* body or one multipart file): its digits; ?top_k=K,
                      ?include_input=1 (models of digits only)
GET  /health, GET /model, GET / (the drawing page, static files under /static)

Everything from outside is checked before it reaches the network: body size, content type,
image dimensions, array shape and values, query parameters. Bad input is a 4xx JSON {"error": ...}.
No one large body stalls the event loop: JSON bodies are bounded by the images they may carry and
parsed in a thread, pictures decoded in threads, multipart bodies parsed in pieces. Each request has a
read deadline and the server a bound on open connections (BoundedProtocol). Concurrent requests are
grouped into one forward pass by a single inference worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import h11
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ImageTooLarge, LenetError
from .datasets import reads_digits
from .inference import check_top_k, open_model
from .predict import read_number_result, top_k
from .pictures.inputs import array_to_inputs, check_reads_numbers, image_to_input
from .pictures.numbers import NumberInputs, image_to_number_inputs

STATIC_DIR = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "image/tiff")
# Only ASCII digits: str.isdigit() also passes "²", which int() refuses, and int() takes "١" (Arabic-Indic).
ASCII_DIGITS = re.compile(r"[0-9]+")
# Bytes of JSON one 28x28 image can need: 784 numbers of at most 24 characters (the longest repr of a
# float64) with separators, even pretty-printed. A larger JSON body is refused before it is parsed:
# json.loads holds the GIL throughout, so 4 MB of JSON would stall every other request for its duration.
JSON_BYTES_PER_IMAGE = 32 * 1024
# How far past its limit a body is still read (and dropped) so that its client gets the 413 (_read_body).
DRAIN_BYTES = 16 * 1024 * 1024
MULTIPART_PIECE_BYTES = 64 * 1024
FLAGS = {"0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}


@dataclass(frozen=True)
class Limits:
    """What one request may carry and how long it may take to arrive, and how many connections may be open."""
    max_body_bytes: int = 4 * 1024 * 1024
    max_image_pixels: int = 16_000_000
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


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class InferenceWorker:
    """One task runs the network; requests that arrive while it is busy are batched into its next pass."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int):
        self.predict, self.max_batch = predict, max_batch
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for float (N, 28, 28) inputs."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    async def _run(self) -> None:
        carried = None  # a request taken from the queue that would have made the last pass too large
        while True:
            waiting = [carried or await self.queue.get()]
            carried, size = None, len(waiting[0][0])
            # Each request holds at most max_batch images (the handlers refuse more), so each pass does too.
            while not self.queue.empty():
                request = self.queue.get_nowait()
                if size + len(request[0]) > self.max_batch:
                    carried = request
                    break
                waiting.append(request)
                size += len(request[0])
            try:
                probabilities = await asyncio.to_thread(self.predict, np.concatenate([w[0] for w in waiting]))
            except Exception as error:  # hand the failure to every waiting request
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            offset = 0
            for inputs, future in waiting:
                if not future.done():
                    future.set_result(probabilities[offset:offset + len(inputs)])
                offset += len(inputs)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) when it exceeds LIMIT bytes.

    A body up to DRAIN_BYTES over LIMIT is read to its end and dropped before the answer: a client
    still sending would otherwise find the connection closed under it (a broken pipe) and never see
    the 413. Nothing over LIMIT is kept, and the read deadline bounds the time; bigger bodies are
    refused as soon as they are known to be over, unread.
    """
    readable = limit + DRAIN_BYTES
    declared = request.headers.get("content-length")
    over = None
    if declared is not None:
        if not ASCII_DIGITS.fullmatch(declared):
            raise BadRequest(400, "invalid Content-Length header")
        # More digits than the limit has is over it, and int() refuses over 4,300 digits.
        if len(declared.lstrip("0")) > len(str(limit)) or int(declared) > limit:
            over = (f"request body is {declared[:20]}{'...' if len(declared) > 20 else ''} bytes, "
                    f"over the limit of {limit:,}")
            if len(declared.lstrip("0")) > len(str(readable)) or int(declared) > readable:
                raise BadRequest(413, over)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > readable:
                raise BadRequest(413, f"request body is over the limit of {limit:,} bytes")
            if size > limit:
                over = over or f"request body is over the limit of {limit:,} bytes"
            else:
                chunks.append(chunk)
    except ClientDisconnect:  # the client left, or was dropped at the read deadline: nobody reads the answer
        raise BadRequest(400, "the client closed the connection before the body was complete") from None
    if over:
        raise BadRequest(413, over)
    return b"".join(chunks)


def _json_images(body: bytes, key: str) -> list:
    try:
        payload = json.loads(body)
    except ValueError as error:  # also bad UTF-8, and integers of over 4,300 digits
        raise BadRequest(400, f"body is not valid JSON ({error})") from None
    except RecursionError:  # json's parser recurses once per nesting level: "[[[[..." exhausts the stack
        raise BadRequest(400, "body is not valid JSON (nested too deeply)") from None
    if not isinstance(payload, dict) or key not in payload:
        raise BadRequest(400, f'JSON body must be an object with "{key}"')
    return payload[key]


def _json_inputs(body: bytes, batch: bool, max_batch: int) -> np.ndarray:
    """The float (N, 28, 28) inputs of a JSON body (called in a thread: a full batch's 2 MB takes tens of ms)."""
    values = _json_images(body, "images" if batch else "image")
    if not batch:
        return _array_input(values, "image")
    if not isinstance(values, list) or not values:
        raise BadRequest(400, '"images" must be a non-empty list of 28x28 arrays')
    if len(values) > max_batch:
        raise BadRequest(413, f"{len(values)} images, over the batch limit of {max_batch}")
    return np.concatenate([_array_input(v, f"images[{i}]") for i, v in enumerate(values)])


def _json_kind(value) -> str:
    return {bool: "true/false", str: "a string", dict: "an object", list: "a list", type(None): "null"}.get(
        type(value), "a number")


def _is_number(value) -> bool:
    return type(value) in (int, float)  # not bool, an int subclass


def _json_image_problem(value) -> str | None:
    """What keeps VALUE from being 28 lists of 28 numbers or 784 numbers, or None. Checked before numpy
    sees it, which would take "0.5" and true for numbers and convert any shape first."""
    if not isinstance(value, list):
        return f"got {_json_kind(value)}"
    if len(value) == 784:
        bad = next((i for i, x in enumerate(value) if not _is_number(x)), None)
        return None if bad is None else f"[{bad}] is {_json_kind(value[bad])}"
    if len(value) != 28:
        return f"got a list of {len(value)}"
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != 28:
            return f"[{i}] is " + (f"a list of {len(row)}" if isinstance(row, list) else _json_kind(row))
        bad = next((j for j, x in enumerate(row) if not _is_number(x)), None)
        if bad is not None:
            return f"[{i}][{bad}] is {_json_kind(row[bad])}"
    return None


def _array_input(value, name: str) -> np.ndarray:
    """A JSON 28x28 array of numbers in [0, 1] -> float32 (1, 28, 28)."""
    problem = _json_image_problem(value)
    if problem:
        raise BadRequest(400, f"{name}: must be 28 lists of 28 numbers, or 784 numbers ({problem})")
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an integer beyond float64's range
        raise BadRequest(400, f"{name}: a number is beyond float64's range") from None
    try:
        return array_to_inputs(array.reshape(1, 28, 28), name)
    except LenetError as error:
        raise BadRequest(400, str(error)) from None


def _image_input(payload: bytes, name: str, limits: Limits, dataset: str) -> np.ndarray:
    try:
        return image_to_input(payload, name, limits.max_image_pixels, dataset)[None]
    except ImageTooLarge as error:
        raise BadRequest(413, str(error)) from None
    except LenetError as error:
        raise BadRequest(400, str(error)) from None


def _number_input(payload: bytes, name: str, limits: Limits) -> NumberInputs:
    try:
        return image_to_number_inputs(payload, name, limits.max_image_pixels)
    except ImageTooLarge as error:
        raise BadRequest(413, str(error)) from None
    except LenetError as error:
        raise BadRequest(400, str(error)) from None


async def _read_number_input(request: Request, limits: Limits) -> NumberInputs:
    """The digits of the one picture a /read request carries (a raw image body or one multipart file)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_body(request, limits.max_body_bytes)
    if content_type == "multipart/form-data":
        files = await _uploads(body, request.headers, limits)
        if len(files) != 1:
            raise BadRequest(400, f"/read takes one file, got {len(files)}")
        (name, body), = files
        return await run_in_threadpool(_number_input, body, name, limits)
    if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
        return await run_in_threadpool(_number_input, body, "upload", limits)
    raise BadRequest(415, f"unsupported content type {content_type or '(none)'!r}: send an image "
                          f"({', '.join(IMAGE_TYPES)}) or multipart/form-data")


async def _uploads(body: bytes, headers: Headers, limits: Limits) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every file in a multipart/form-data body."""
    async def stream():
        # The parser runs on the event loop: fed 64 KiB at a time with a turn for other tasks between,
        # a 4 MB body delays /health by the parse of 64 KiB, not of all of it.
        for start in range(0, len(body), MULTIPART_PIECE_BYTES):
            yield body[start:start + MULTIPART_PIECE_BYTES]
            await asyncio.sleep(0)
        yield b""
    try:
        form = await MultiPartParser(headers, stream(), max_files=limits.max_batch, max_fields=16,
                                     max_part_size=limits.max_body_bytes).parse()
    except MultiPartException as error:
        if error.message.startswith("Too many files"):  # the parser stops at max_files; 413 as for JSON
            raise BadRequest(413, f"more files than the batch limit of {limits.max_batch}") from None
        raise BadRequest(400, f"malformed multipart body ({error.message})") from None
    files = [(value.filename or key, await value.read()) for key, value in form.multi_items()
             if isinstance(value, UploadFile)]
    if not files:
        raise BadRequest(400, "multipart body has no file field")
    return files


async def _read_inputs(request: Request, limits: Limits, batch: bool, dataset: str) -> np.ndarray:
    """The float (N, 28, 28) inputs of a request, whatever form they came in (pictures normalized for
    a model of DATASET)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        images = limits.max_batch if batch else 1
        body = await _read_body(request, min(limits.max_body_bytes, images * JSON_BYTES_PER_IMAGE))
        return await run_in_threadpool(_json_inputs, body, batch, limits.max_batch)
    body = await _read_body(request, limits.max_body_bytes)
    if content_type == "multipart/form-data":
        files = await _uploads(body, request.headers, limits)
        if not batch and len(files) != 1:
            raise BadRequest(400, f"/predict takes one file, got {len(files)} (use /predict/batch)")
        return np.concatenate([await run_in_threadpool(_image_input, payload, name, limits, dataset)
                               for name, payload in files])
    if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
        return await run_in_threadpool(_image_input, body, "upload", limits, dataset)
    raise BadRequest(415, f"unsupported content type {content_type or '(none)'!r}: send an image "
                          f"({', '.join(IMAGE_TYPES)}), multipart/form-data or application/json")


def _top_k_param(request: Request, num_classes: int) -> int:
    value = request.query_params.get("top_k")
    if value is None:
        return check_top_k(None, num_classes)
    if not ASCII_DIGITS.fullmatch(value) or len(value) > 3 or not 1 <= int(value) <= num_classes:
        raise BadRequest(400, f"top_k must be an integer from 1 to {num_classes}, got {value[:20]!r}")
    return int(value)


def _include_input_param(request: Request) -> bool:
    value = request.query_params.get("include_input", "0")
    if value.lower() not in FLAGS:
        raise BadRequest(400, f"include_input must be one of {', '.join(FLAGS)}, got {value[:20]!r}")
    return FLAGS[value.lower()]


def _json_answer(content, status_code: int = 200) -> JSONResponse:
    """CONTENT as JSON. NaN and infinity are not JSON (Starlette's encoder refuses them): from a damaged
    model they become a 500 that says so, not a traceback."""
    try:
        return JSONResponse(content, status_code=status_code)
    except ValueError:
        return JSONResponse({"error": "the answer holds NaN or infinite numbers: the model's weights or "
                                      "metadata are damaged"}, status_code=500)


def _answering(endpoint: Callable) -> Callable:
    """ENDPOINT (a request -> the answer's JSON content) with its refusals as 4xx JSON answers, and the
    model's own failures (LenetError: damaged weights, say) as a 500 that names them."""
    async def answer(request: Request) -> JSONResponse:
        try:
            return _json_answer(await endpoint(request))
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except LenetError as error:  # the inputs' LenetErrors are BadRequests by now: this is the server's
            return JSONResponse({"error": str(error)}, status_code=500)
    return answer


def _prediction(inputs: np.ndarray, probabilities: np.ndarray, k: int, include_input: bool,
                classes: tuple[str, ...]) -> list[dict]:
    results = []
    for image, row, best in zip(inputs, probabilities, top_k(probabilities, k)):
        result = {"class": best[0][0], "label": classes[best[0][0]], "probabilities": [float(p) for p in row],
                  "top_k": [{"class": c, "label": classes[c], "probability": p} for c, p in best]}
        if include_input:
            result["input"] = np.round(image, 4).tolist()
        results.append(result)
    return results


def create_app(source: str | Path, limits: Limits = Limits(), device: str = "cpu",
               precision: str = "auto") -> Starlette:
    """The app serving a model directory's newest checkpoint, or an exported .onnx file, in PRECISION
    (see inference.open_model)."""
    model = open_model(source, device, precision=precision)
    dataset, classes = model.info.dataset, model.info.classes
    # The page draws digits for a model of digits, and takes a picture to classify for any other.
    info = model.info.to_dict() | {"reads_digits": reads_digits(dataset), "precision": model.precision}
    worker = InferenceWorker(model.probabilities, limits.max_batch)

    def handler(batch: bool):
        async def predict(request: Request) -> dict:
            k = _top_k_param(request, len(classes))
            include_input = _include_input_param(request)
            inputs = await _read_inputs(request, limits, batch, dataset)
            results = _prediction(inputs, await worker(inputs), k, include_input, classes)
            return {"predictions": results} if batch else results[0]
        return predict

    async def read(request: Request) -> dict:
        try:
            check_reads_numbers(dataset, "this model")
        except LenetError as error:
            raise BadRequest(400, str(error)) from None
        k = _top_k_param(request, len(classes))
        include_input = _include_input_param(request)
        number = await _read_number_input(request, limits)
        # A number may have more inputs than one pass takes (up to 32 digits, each read several
        # ways when touching): they go to the worker max_batch at a time.
        chunks = [await worker(number.inputs[i:i + limits.max_batch])
                  for i in range(0, len(number.inputs), limits.max_batch)]
        result = read_number_result(number, np.concatenate(chunks), k)
        for digit in result["digits"]:
            digit["top_k"] = [{"class": c, "probability": p} for c, p in digit["top_k"]]
            image = digit.pop("input")
            if include_input:
                digit["input"] = np.round(image, 4).tolist()
        return result

    async def health(request: Request) -> dict:
        return {"status": "ok"}

    async def model(request: Request) -> dict:
        return info

    async def page(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def not_found(request: Request, exc) -> JSONResponse:
        return JSONResponse({"error": f"no route {request.method} {request.url.path}"},
                            status_code=getattr(exc, "status_code", 404))

    async def server_error(request: Request, exc) -> JSONResponse:  # a bug: Starlette still logs the traceback
        return JSONResponse({"error": "internal server error"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await worker.start()
        yield
        await worker.stop()

    routes = [Route("/", page), Route("/health", _answering(health)), Route("/model", _answering(model)),
              Route("/predict", _answering(handler(batch=False)), methods=["POST"]),
              Route("/predict/batch", _answering(handler(batch=True)), methods=["POST"]),
              Route("/read", _answering(read), methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={404: not_found, 405: not_found, Exception: server_error})


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


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          device: str = "cpu", precision: str = "auto") -> None:
    """Run the app on uvicorn until interrupted."""
    import uvicorn
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise LenetError(f"--port must be between 0 and 65535, got {port}")
    app = create_app(source, limits, device, precision)
    # Keep-alive connections idle for 5 s are closed; a header over h11's 16 KiB default is refused.
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=5,
                http=functools.partial(BoundedProtocol, limits=limits))
