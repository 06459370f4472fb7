"""Loading user arrays (``.npy``/``.npz``) without pickles, within a size limit.

Arrays come from files users did not always make themselves: a 2 MB ``.npz``
can inflate to gigabytes, a ``.npy`` header can declare terabytes. Every
array's header is read first (on the zip member's stream for an ``.npz``), and
the file is refused, before any array data is read, when an array:

- would take more than :data:`MAX_ARRAY_BYTES` (2 GiB) in memory, alone or
  with the other arrays of the same ``.npz``; set the environment variable
  ``PARITY_MAX_ARRAY_BYTES`` (a number of bytes) to raise the limit;
- is not made of numbers: Python objects (they need pickle, which can run
  code), records (structured dtypes), strings, dates;
- declares a shape whose size differs from the data the file (or the zip
  member, by its declared uncompressed size) holds;
- is 0-d: every input array has a batch axis.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO

import numpy as np

from parity.runtime.errors import InputError, ParityError, quoted
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.paths import as_path

MAX_ARRAY_BYTES = 2 * 2**30
MAX_ARRAY_BYTES_VARIABLE = "PARITY_MAX_ARRAY_BYTES"
# numpy's own bound on the header text it parses; checked before the header is
# read, since numpy reads as much as the header's length field declares.
MAX_HEADER_BYTES = 10_000
_NOT_NUMBERS = {
    "O": "Python objects (pickles, which can run code when loaded)",
    "V": "records",
    "S": "byte strings",
    "U": "strings",
    "M": "dates",
    "m": "time spans",
}
_READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a zip member compressed in a way zipfile cannot read
    RuntimeError,  # an encrypted zip member
)


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # where the array data starts


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """One array from a ``.npy`` file, checked as the module says."""
    path = as_path(path)
    if _is_npz(path):
        raise ParityError(f"{path}: expected one array (.npy), found an .npz archive")
    try:
        with open(path, "rb") as stream:
            header = _read_header(stream, path, None)
            held = os.fstat(stream.fileno()).st_size - header.offset
            _check(path, None, header, held, _limit())
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError as exc:
        raise ParityError(f"{path}: not a numpy array file ({quoted(exc)})") from None
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable numpy file ({quoted(exc)})") from None


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Named arrays from an ``.npz`` file, checked as the module says."""
    path = as_path(path)
    if not _is_npz(path):
        raise ParityError(f"{path}: expected named arrays (.npz), found a single array")
    limit = _limit()
    try:
        with zipfile.ZipFile(path) as archive:
            members = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise InputError(f"{path}: member {info.filename!r} is not a .npy array")
                key = info.filename.removesuffix(".npy")
                with archive.open(info) as stream:
                    header = _read_header(stream, path, key)
                _check(path, key, header, info.file_size - header.offset, limit)
                members[key] = (info, header)
            total = sum(_nbytes(header) for _, header in members.values())
            if total > limit:
                raise InputError(
                    f"{path}: its arrays together take {describe_bytes(total)}, beyond the limit "
                    f"of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)"
                )
            arrays = {}
            for key, (info, _) in members.items():
                with archive.open(info) as stream:
                    arrays[key] = np.lib.format.read_array(stream, allow_pickle=False)
            return arrays
    except ValueError as exc:
        raise ParityError(f"{path}: not a numpy array file ({quoted(exc)})") from None
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable numpy file ({quoted(exc)})") from None


def _limit() -> int:
    return byte_limit(MAX_ARRAY_BYTES_VARIABLE, MAX_ARRAY_BYTES)


def _is_npz(path: Path) -> bool:
    """Whether ``path`` is a zip archive (an ``.npz``) rather than a ``.npy``;
    a missing, unreadable or foreign file is refused."""
    if not path.exists():
        raise ParityError(f"{path}: no such file")
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a .npy or .npz file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise ParityError(f"{path}: not a numpy .npy or .npz file")
    return magic.startswith(b"PK")


def _read_header(stream: IO[bytes], path: Path, key: str | None) -> _Header:
    """The header of the array at the start of ``stream``, read without
    reading more than :data:`MAX_HEADER_BYTES` of it."""
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        # numpy writes version 3.0 only for records whose field names are not Latin-1
        raise InputError(f"{_what(path, key)}: numpy format {version[0]}.{version[1]} is not read")
    length_field = stream.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(length_field, "little")
    if length > MAX_HEADER_BYTES:
        raise InputError(
            f"{_what(path, key)}: its header declares {length} bytes, beyond {MAX_HEADER_BYTES}"
        )
    text = stream.read(length)
    reader = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = reader(io.BytesIO(length_field + text))
    return _Header(shape, dtype, 8 + len(length_field) + length)


def _check(path: Path, key: str | None, header: _Header, held: int, limit: int) -> None:
    """Refuse ``header``'s array unless it is of numbers, not 0-d, within
    ``limit`` and exactly the ``held`` bytes of data that follow the header."""
    what, dtype, shape = _what(path, key), header.dtype, header.shape
    if dtype.kind not in "biufc" or dtype.hasobject:
        kind = _NOT_NUMBERS.get(dtype.kind, "values that are not numbers")
        raise InputError(
            f"{what} holds {kind} (dtype {dtype}), refused: only arrays of numbers are read"
        )
    if shape == ():
        raise InputError(f"{what} is 0-d (a single value); an input array has a batch axis")
    if any(size < 0 for size in shape):
        raise InputError(f"{what} declares shape {shape}, with a negative size")
    nbytes = _nbytes(header)
    if nbytes > limit:
        raise InputError(
            f"{what} declares shape {shape} of {dtype}: {describe_bytes(nbytes)}, beyond the "
            f"limit of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)"
        )
    if held != nbytes:
        raise InputError(
            f"{what} declares shape {shape} of {dtype} ({nbytes} bytes), but the file holds "
            f"{held} bytes of array data"
        )


def _nbytes(header: _Header) -> int:
    return prod(header.shape) * header.dtype.itemsize


def _what(path: Path, key: str | None) -> str:
    return f"{path}: the array" if key is None else f"{path}: array {key!r}"
