"""The Starlette app (its routes and their JSON answers) and `serve`, which runs it on uvicorn."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Callable

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..datasets import reads_digits
from ..errors import LenetError
from ..inference import open_model
from ..predict import predictions_from, read_number_result
from ..pictures.inputs import check_reads_numbers
from .connections import BoundedProtocol
from .decoding import BadRequest, include_input_param, read_request_inputs, read_request_number, top_k_param
from .limits import Limits
from .worker import InferenceWorker

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


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
            k = top_k_param(request, len(classes))
            include_input = include_input_param(request)
            inputs = await read_request_inputs(request, limits, batch, dataset)
            results = [p.to_json(include_input) for p in predictions_from(await worker(inputs), inputs, classes, k)]
            return {"predictions": results} if batch else results[0]
        return predict

    async def read(request: Request) -> dict:
        try:
            check_reads_numbers(dataset, "this model")
        except LenetError as error:
            raise BadRequest(400, str(error)) from None
        k = top_k_param(request, len(classes))
        include_input = include_input_param(request)
        number = await read_request_number(request, limits)
        # A number may have more inputs than one pass takes (up to 32 digits, each read several
        # ways when touching): they go to the worker max_batch at a time.
        chunks = [await worker(number.inputs[i:i + limits.max_batch])
                  for i in range(0, len(number.inputs), limits.max_batch)]
        return read_number_result(number, np.concatenate(chunks), k).to_json(include_input)

    async def health(request: Request) -> dict:
        return {"status": "ok"}

    async def model(request: Request) -> dict:
        return info

    async def page(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def not_found(request: Request, exc) -> JSONResponse:
        return _error(f"no route {request.method} {request.url.path}", getattr(exc, "status_code", 404))

    async def server_error(request: Request, exc) -> JSONResponse:  # a bug: Starlette still logs the traceback
        return _error("internal server error", 500)

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


# The answers are the library's result objects (lenet.results) as JSON; here, how they and every error are sent.

def _answering(endpoint: Callable) -> Callable:
    """ENDPOINT (a request -> the answer's JSON content) with its refusals as 4xx JSON answers, and the
    model's own failures (LenetError: damaged weights, say) as a 500 that names them."""
    async def answer(request: Request) -> JSONResponse:
        try:
            return _json_answer(await endpoint(request))
        except BadRequest as error:
            return _error(str(error), error.status)
        except LenetError as error:  # the inputs' LenetErrors are BadRequests by now: this is the server's
            return _error(str(error), 500)
    return answer


def _json_answer(content, status_code: int = 200) -> JSONResponse:
    """CONTENT as JSON. NaN and infinity are not JSON (Starlette's encoder refuses them): from a damaged
    model they become a 500 that says so, not a traceback."""
    try:
        return JSONResponse(content, status_code=status_code)
    except ValueError:
        return _error("the answer holds NaN or infinite numbers: the model's weights or metadata are damaged", 500)


def _error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)
