"""Request -> inputs: the body read within its limit, JSON images, multipart uploads, pictures and
numbers, and the query parameters; whatever is refused is a BadRequest with its status.

The body is read first (read_request_body), then decoded (request_inputs, request_number): the app
bounds the decoding and the network by the compute deadline, and the body by the protocol's read deadline.
No one large body stalls the event loop: JSON bodies are bounded by the images they may carry and
parsed in a thread, pictures decoded in threads, multipart bodies parsed in pieces.
"""

from __future__ import annotations

import asyncio
import json
import re

import numpy as np
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from ..errors import Declined, ImageTooLarge, LenetError, NoInk
from ..inference import check_top_k
from ..pictures.inputs import array_to_inputs, image_to_input
from ..pictures.numbers import NumberInputs, image_to_number_inputs
from .limits import Limits
from .refusals import BadRequest

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


async def read_request_body(request: Request, limits: Limits, json_images: int | None = None) -> bytes:
    """A request's body within its limit: max_body_bytes, or for a JSON body that may carry JSON_IMAGES
    images, what they can need (JSON_BYTES_PER_IMAGE each)."""
    limit = limits.max_body_bytes
    if json_images is not None and _content_type(request.headers) == "application/json":
        limit = min(limit, json_images * JSON_BYTES_PER_IMAGE)
    return await _read_body(request, limit)


async def request_inputs(body: bytes, headers: Headers, limits: Limits, batch: bool,
                         dataset: str) -> list[np.ndarray | Declined]:
    """The inputs of a request's BODY, whatever form they came in: per picture or JSON body, its float
    (N, 28, 28) inputs (pictures normalized for a model of DATASET), or why a picture is answered
    without the network (Declined: no ink, several digits)."""
    content_type = _content_type(headers)
    if content_type == "application/json":
        return [await _in_thread(_json_inputs, body, batch, limits.max_batch)]
    if content_type == "multipart/form-data":
        files = await _uploads(body, headers, limits)
        if not batch and len(files) != 1:
            raise BadRequest(400, f"/predict takes one file, got {len(files)} (use /predict/batch)")
        return [await _in_thread(_image_input, payload, name, limits, dataset) for name, payload in files]
    if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
        return [await _in_thread(_image_input, body, "upload", limits, dataset)]
    raise BadRequest(415, f"unsupported content type {content_type or '(none)'!r}: send an image "
                          f"({', '.join(IMAGE_TYPES)}), multipart/form-data or application/json")


async def request_number(body: bytes, headers: Headers, limits: Limits) -> NumberInputs | NoInk:
    """The digits of the one picture a /read request's BODY carries (a raw image or one multipart file)."""
    content_type = _content_type(headers)
    if content_type == "multipart/form-data":
        files = await _uploads(body, headers, limits)
        if len(files) != 1:
            raise BadRequest(400, f"/read takes one file, got {len(files)}")
        (name, body), = files
        return await _in_thread(_number_input, body, name, limits)
    if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
        return await _in_thread(_number_input, body, "upload", limits)
    raise BadRequest(415, f"unsupported content type {content_type or '(none)'!r}: send an image "
                          f"({', '.join(IMAGE_TYPES)}) or multipart/form-data")


def top_k_param(request: Request, num_classes: int) -> int:
    """The ?top_k= of a request: an ASCII integer from 1 to NUM_CLASSES, or inference's default."""
    value = request.query_params.get("top_k")
    if value is None:
        return check_top_k(None, num_classes)
    if not ASCII_DIGITS.fullmatch(value) or len(value) > 3 or not 1 <= int(value) <= num_classes:
        raise BadRequest(400, f"top_k must be an integer from 1 to {num_classes}, got {value[:20]!r}")
    return int(value)


# A threshold in the query string: plain decimal notation, no exponent, NaN or infinity.
DECIMAL = re.compile(r"(0|1)(\.[0-9]{1,12})?|\.[0-9]{1,12}")


def min_confidence_param(request: Request, default: float) -> float:
    """The ?min_confidence= of a request: a decimal from 0 to 1 (see lenet.decline), or DEFAULT, the model's."""
    value = request.query_params.get("min_confidence")
    if value is None:
        return default
    if not DECIMAL.fullmatch(value) or float(value) > 1.0:
        raise BadRequest(400, f"min_confidence must be a number from 0 to 1, got {value[:20]!r}")
    return float(value)


def include_input_param(request: Request) -> bool:
    """The ?include_input= of a request: one of FLAGS, false when absent."""
    value = request.query_params.get("include_input", "0")
    if value.lower() not in FLAGS:
        raise BadRequest(400, f"include_input must be one of {', '.join(FLAGS)}, got {value[:20]!r}")
    return FLAGS[value.lower()]


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


def _content_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def _in_thread(function, *args):
    """FUNCTION(*ARGS) in a thread. Past the compute deadline the request stops waiting for it and is
    answered; the thread cannot be stopped and finishes its (bounded) work unwatched. Starlette's
    run_in_threadpool would keep the request waiting for it instead (anyio shields it from cancelling)."""
    return await asyncio.to_thread(function, *args)


def _image_input(payload: bytes, name: str, limits: Limits, dataset: str) -> np.ndarray | Declined:
    try:
        return image_to_input(payload, name, limits.max_image_pixels, dataset)[None]
    except Declined as declined:  # an answer, not an error
        return declined
    except ImageTooLarge as error:
        raise BadRequest(413, str(error)) from None
    except LenetError as error:
        raise BadRequest(400, str(error)) from None


def _number_input(payload: bytes, name: str, limits: Limits) -> NumberInputs | NoInk:
    try:
        return image_to_number_inputs(payload, name, limits.max_image_pixels)
    except NoInk as declined:  # an answer: no number
        return declined
    except ImageTooLarge as error:
        raise BadRequest(413, str(error)) from None
    except LenetError as error:
        raise BadRequest(400, str(error)) from None


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


def _json_kind(value) -> str:
    return {bool: "true/false", str: "a string", dict: "an object", list: "a list", type(None): "null"}.get(
        type(value), "a number")


def _is_number(value) -> bool:
    return type(value) in (int, float)  # not bool, an int subclass
