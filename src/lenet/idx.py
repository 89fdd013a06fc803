"""The array files lenet reads: the IDX format MNIST comes in (raw or gzip) and numpy's .npy, each
checked against its length before anything is allocated; and the shape of MNIST: 28x28 images, 10 digits.

Nothing here needs torch, so reading pictures and IDX files for an exported model starts quickly.
"""

from __future__ import annotations

import hashlib
import io
import math
import tokenize
import zlib
from pathlib import Path

import numpy as np

from .errors import LenetError
from .files import atomic_write_bytes, check_output_path, read_file_bytes

IMAGE_SIZE = 28
NUM_CLASSES = 10
# The most a gzip file may unpack to: far above any IDX file of 28x28 images a user would bring (all
# 60,000 MNIST training images are 47 MB), far below what a crafted file of a few MB can unpack to.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024

# numpy 1.x's limit on an array's dimensions (2.x allows 64); no IDX file has a tenth of them.
MAX_IDX_DIMENSIONS = 32
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def gunzip_if_needed(raw: bytes, name: str, max_bytes: int = MAX_UNPACKED_BYTES) -> bytes:
    """RAW itself, or its decompressed content when it starts with the gzip magic bytes, refused as
    soon as it unpacks to more than MAX_BYTES (decompression stops there: no gzip bomb is unpacked)."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    chunks, size, rest = [], 0, raw
    try:
        while rest[:2] == b"\x1f\x8b":  # one gzip member after another, as gzip.decompress reads them
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = member.decompress(rest, max_bytes + 1 - size)
            size += len(chunk)
            chunks.append(chunk)
            if size > max_bytes or member.unconsumed_tail:
                raise LenetError(f"{name}: unpacks to more than {max_bytes:,} bytes; refused")
            if not member.eof:
                raise LenetError(f"{name}: corrupt gzip data (truncated)")
            rest = member.unused_data
    except zlib.error as error:
        raise LenetError(f"{name}: corrupt gzip data ({error})") from None
    return b"".join(chunks)


def is_idx(raw: bytes) -> bool:
    """Whether RAW (uncompressed) is an IDX file: bytes 00 00, a type code, a dimension count and
    dimensions that account for its length exactly. Two zero bytes alone are not enough: ICO, TGA
    and SPIDER pictures start with them too."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not 1 <= raw[3] <= MAX_IDX_DIMENSIONS:
        return False
    header_bytes = 4 + 4 * raw[3]
    # math.prod of Python integers: numpy's int64 product of four dimensions of 65,536 wraps to 0.
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3]))
    return len(raw) >= header_bytes and len(raw) == header_bytes + math.prod(shape) * np.dtype(_IDX_DTYPES[raw[2]]).itemsize


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX buffer, checking the magic number, the dimensions and the length."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise LenetError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    if not 1 <= ndim <= MAX_IDX_DIMENSIONS:
        raise LenetError(f"{name}: IDX file declares {ndim} dimensions (1 to {MAX_IDX_DIMENSIONS} are readable)")
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise LenetError(f"{name}: IDX header truncated ({len(raw)} bytes, needs {header_bytes})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise LenetError(f"{name}: IDX data length {len(raw)} bytes does not match dimensions "
                         f"{'x'.join(map(str, shape))} ({expected} bytes expected)")
    return np.frombuffer(raw, dtype, offset=header_bytes).reshape(shape).astype(dtype.newbyteorder("="))


def parse_npy(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse a .npy buffer, its header's shape checked against the length before anything is allocated
    (np.load trusts it: a header claiming 10^9 images allocates 730 GiB). Nothing is unpickled."""
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"format version {version[0]}.{version[1]} (1.0 and 2.0 are readable)")
        shape, fortran_order, dtype = read_header(stream)
    # numpy parses the header with ast.literal_eval, which raises these on crafted text.
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError, EOFError, tokenize.TokenError) as error:
        raise LenetError(f"{name}: not a valid .npy array ({type(error).__name__}: {error})"[:300]) from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise LenetError(f"{name}: not a valid .npy array (dtype {dtype}: arrays of numbers only, nothing is unpickled)")
    offset, elements = stream.tell(), math.prod(shape)
    if len(raw) - offset != elements * dtype.itemsize:
        raise LenetError(f"{name}: .npy data length {len(raw) - offset} bytes does not match its shape "
                         f"{shape} ({elements * dtype.itemsize} bytes expected)")
    return np.frombuffer(raw, dtype, elements, offset).reshape(shape, order="F" if fortran_order else "C")


def read_idx(path: str | Path, expected_sha256: str | None = None,
             max_bytes: int = MAX_UNPACKED_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip, unpacking to at most MAX_BYTES) into a numpy array, verifying
    the SHA-256 of its uncompressed content when given."""
    array, sha256 = read_idx_sha256(path, max_bytes)
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise LenetError(f"{path}: SHA-256 checksum mismatch (file is corrupt or not the file lenet expects); "
                         f"delete it and let lenet download it again")
    return array


def read_idx_sha256(path: str | Path, max_bytes: int = MAX_UNPACKED_BYTES) -> tuple[np.ndarray, str]:
    """An IDX file's array and the SHA-256 of its uncompressed content (see read_idx)."""
    path = Path(path)
    raw = gunzip_if_needed(read_file_bytes(path, max_bytes), str(path), max_bytes)
    return parse_idx(raw, str(path)), hashlib.sha256(raw).hexdigest()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file (atomically)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise LenetError(f"{path}: only uint8 arrays can be written as IDX, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    atomic_write_bytes(check_output_path(path, "idx"), header + array.tobytes())
