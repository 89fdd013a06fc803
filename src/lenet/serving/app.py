"""The Starlette app (its routes and their JSON answers) and `serve`, which runs it on uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import socket
from pathlib import Path
from typing import Callable

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..datasets import reads_digits
from ..errors import LenetError, NoInk
from ..inference import concatenate_scores, open_model
from ..predict import item_predictions, read_number_result
from ..results import NumberReading
from ..pictures.inputs import check_reads_numbers
from .access import WILDCARD_ADDRESSES, Access, OwnOriginOnly
from .connections import BoundedProtocol, Shared
from .decoding import (include_input_param, min_confidence_param, read_request_body, request_inputs, request_number,
                       top_k_param)
from .limits import Limits
from .refusals import BadRequest, error_response
from .worker import InferenceWorker

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(source: str | Path, limits: Limits = Limits(), device: str = "cpu",
               precision: str = "auto", access: Access = Access()) -> Starlette:
    """The app serving a model directory's newest checkpoint, or an exported .onnx file, in PRECISION
    (see inference.open_model), to the hosts and pages ACCESS allows."""
    model = open_model(source, device, precision=precision)
    for warning in model.warnings:  # a damaged newest checkpoint passed over, say: in the server's log
        logging.getLogger("uvicorn.error").warning(warning)
    dataset, classes = model.info.dataset, model.info.classes
    # The page draws digits for a model of digits, and takes a picture to classify for any other.
    info = model.info.to_dict() | {"reads_digits": reads_digits(dataset), "precision": model.precision,
                                   "temperature": model.temperature, "min_confidence": model.min_confidence,
                                   "declines_non_digits": model.has_gate}
    worker = InferenceWorker(model.scores, limits.max_batch)

    def handler(batch: bool):
        async def predict(request: Request) -> dict:
            k = top_k_param(request, len(classes))
            include_input = include_input_param(request)
            threshold = min_confidence_param(request, model.min_confidence)
            body = await read_request_body(request, limits, json_images=limits.max_batch if batch else 1)

            async def answer() -> list[dict]:
                items = await request_inputs(body, request.headers, limits, batch, dataset)
                arrays = [item for item in items if isinstance(item, np.ndarray)]
                scores = await worker(np.concatenate(arrays)) if arrays else None
                return [p.to_json(include_input) for p in item_predictions(items, scores, model, k, threshold)]
            results = await _within_compute_deadline(answer(), limits.compute_timeout_s)
            return {"predictions": results} if batch else results[0]
        return predict

    async def read(request: Request) -> dict:
        try:
            check_reads_numbers(dataset, "this model")
        except LenetError as error:
            raise BadRequest(400, str(error)) from None
        k = top_k_param(request, len(classes))
        include_input = include_input_param(request)
        threshold = min_confidence_param(request, model.min_confidence)
        body = await read_request_body(request, limits)

        async def answer() -> dict:
            number = await request_number(body, request.headers, limits)
            if isinstance(number, NoInk):
                return NumberReading.without_ink().to_json()
            # A number may have more inputs than one pass takes (up to 128): they go to the worker
            # max_batch at a time.
            chunks = [await worker(number.inputs[i:i + limits.max_batch])
                      for i in range(0, len(number.inputs), limits.max_batch)]
            return read_number_result(number, concatenate_scores(chunks), k, min_confidence=threshold).to_json(include_input)
        return await _within_compute_deadline(answer(), limits.compute_timeout_s)

    async def health(request: Request) -> dict:
        return {"status": "ok"}

    async def describe(request: Request) -> dict:
        return info

    async def page(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def not_found(request: Request, exc) -> JSONResponse:
        return error_response(f"no route {request.method} {request.url.path}", getattr(exc, "status_code", 404))

    async def server_error(request: Request, exc) -> JSONResponse:  # a bug: Starlette still logs the traceback
        return error_response("internal server error", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await worker.start()
        yield
        await worker.stop()

    routes = [Route("/", page), Route("/health", _answering(health)), Route("/model", _answering(describe)),
              Route("/predict", _answering(handler(batch=False)), methods=["POST"]),
              Route("/predict/batch", _answering(handler(batch=True)), methods=["POST"]),
              Route("/read", _answering(read), methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(OwnOriginOnly, access=access)],
                     exception_handlers={404: not_found, 405: not_found, Exception: server_error})


def serve(source: str | Path, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          device: str = "cpu", precision: str = "auto", access: Access = Access()) -> None:
    """Run the app on uvicorn until interrupted. The address is bound before the model loads, so that a
    port in use is a LenetError at once. Requests may name the server by HOST besides ACCESS's names."""
    import uvicorn
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise LenetError(f"--port must be between 0 and 65535, got {port}")
    listening = _bound_socket(host, port)
    try:
        named = access if host in WILDCARD_ADDRESSES else dataclasses.replace(access, hosts=(*access.hosts, host))
        app = create_app(source, limits, device, precision, named)
        # Keep-alive connections idle for 5 s are closed; a header over h11's 16 KiB default is refused.
        config = uvicorn.Config(app, log_level="info", timeout_keep_alive=5,
                                http=functools.partial(BoundedProtocol, limits=limits, shared=Shared()))
        address, bound_port = listening.getsockname()[:2]
        logging.getLogger("uvicorn.error").info("serving on http://%s:%d (Ctrl+C to stop)",
                                                f"[{address}]" if ":" in address else address, bound_port)
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT (as uvicorn would bind it), not yet listening."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        if isinstance(error, socket.gaierror):
            raise LenetError(f"cannot serve on {host}:{port}: unknown host ({error.strerror})") from None
        if error.errno == errno.EADDRINUSE:
            raise LenetError(f"cannot serve on {host}:{port}: the port is in use (stop what uses it, or choose "
                             f"another with --port)") from None
        raise LenetError(f"cannot serve on {host}:{port}: {error.strerror or error}") from None
    return listening


async def _within_compute_deadline(answer, timeout_s: float):
    """ANSWER (a coroutine computing a request's answer) awaited for at most TIMEOUT_S, then a 503."""
    try:
        return await asyncio.wait_for(answer, timeout_s)
    except asyncio.TimeoutError:  # not yet the built-in TimeoutError in Python 3.10
        raise BadRequest(503, f"the answer took over {timeout_s:g} s (--compute-timeout-s): the server is busy, "
                              f"try again") from None


# The answers are the library's result objects (lenet.results) as JSON; here, how they and every error are sent.

def _answering(endpoint: Callable) -> Callable:
    """ENDPOINT (a request -> the answer's JSON content) with its refusals as 4xx JSON answers, and the
    model's own failures (LenetError: damaged weights, say) as a 500 that names them."""
    async def answer(request: Request) -> JSONResponse:
        try:
            return _json_answer(await endpoint(request))
        except BadRequest as error:
            return error_response(str(error), error.status)
        except LenetError as error:  # the inputs' LenetErrors are BadRequests by now: this is the server's
            return error_response(str(error), 500)
    return answer


def _json_answer(content, status_code: int = 200) -> JSONResponse:
    """CONTENT as JSON. NaN and infinity are not JSON (Starlette's encoder refuses them): from a damaged
    model they become a 500 that says so, not a traceback."""
    try:
        return JSONResponse(content, status_code=status_code)
    except ValueError:
        return error_response("the answer holds NaN or infinite numbers: the model's weights or metadata are damaged",
                              500)
