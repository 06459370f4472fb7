"""Loading user arrays (``.npy``/``.npz``) without pickles, within a size limit.

Arrays come from files users did not always make themselves: a 2 MB ``.npz``
can inflate to gigabytes, a ``.npy`` header can declare terabytes. Every
array's header is read first (on the zip member's stream for an ``.npz``), and
the file is refused, before any array data is read, when an array:

- would take more than :data:`MAX_ARRAY_BYTES` (2 GiB) in memory, alone or
  with the other arrays of the same ``.npz``; set the environment variable
  ``PARITY_MAX_ARRAY_BYTES`` (a number of bytes) to raise the limit;
- is not made of real numbers: Python objects (they need pickle, which can
  run code), records (structured dtypes), strings, dates, complex numbers;
- declares a shape whose size differs from the data the file (or the zip
  member, by its declared uncompressed size) holds;
- is 0-d: every input array has a batch axis.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO

import numpy as np

from parity.runtime.errors import InputError, ParityError, quoted
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.paths import as_path, regular_file

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
    "c": "complex numbers",
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
class ArrayHeader:
    """What a ``.npy`` header declares, and where the array data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int


@dataclass(frozen=True)
class NpzMember:
    """One array of an ``.npz``: its zip entry and its checked header."""

    info: zipfile.ZipInfo
    header: ArrayHeader


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
    limit = _limit()
    members = npz_members(path, limit=limit)
    total = sum(_nbytes(member.header) for member in members.values())
    if total > limit:
        raise InputError(
            f"{path}: its arrays together take {describe_bytes(total)}, beyond the limit "
            f"of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {}
            for key, member in members.items():
                with archive.open(member.info) as stream:
                    arrays[key] = np.lib.format.read_array(stream, allow_pickle=False)
            return arrays
    except ValueError as exc:
        raise ParityError(f"{path}: not a numpy array file ({quoted(exc)})") from None
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable numpy file ({quoted(exc)})") from None


def npz_members(
    path: str | os.PathLike[str], names: Sequence[str] | None = None, limit: int | None = None
) -> dict[str, NpzMember]:
    """The arrays of an ``.npz`` file, their headers read and checked as the
    module says, without reading any array data: what both a whole-file read
    and a dataset read in batches start from.

    Args:
        path: the ``.npz`` file.
        names: the arrays wanted, in this order (a missing one is refused);
            every array of the file when None.
        limit: the largest array in bytes; None sets no limit (a dataset
            shard, read a batch at a time).

    Raises:
        ParityError: not an ``.npz``, unreadable, a member that is not a
            ``.npy`` array, a missing array, or a header the module refuses.
    """
    path = as_path(path)
    if not _is_npz(path):
        raise ParityError(f"{path}: expected named arrays (.npz), found a single array")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise InputError(f"{path}: member {info.filename!r} is not a .npy array")
                key = info.filename.removesuffix(".npy")
                if key in infos:
                    raise InputError(f"{path}: holds two arrays named {key!r}")
                infos[key] = info
            missing = [name for name in names or () if name not in infos]
            if missing:
                raise InputError(
                    f"{path}: no array named {missing[0]!r} for that input "
                    f"(has: {', '.join(sorted(infos)) or 'none'})"
                )
            members = {}
            for key in infos if names is None else names:
                info = infos[key]
                with archive.open(info) as stream:
                    header = _read_header(stream, path, key)
                _check(path, key, header, info.file_size - header.offset, limit)
                members[key] = NpzMember(info, header)
            return members
    except ValueError as exc:
        raise ParityError(f"{path}: not a numpy array file ({quoted(exc)})") from None
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable numpy file ({quoted(exc)})") from None


def _limit() -> int:
    return byte_limit(MAX_ARRAY_BYTES_VARIABLE, MAX_ARRAY_BYTES)


def _is_npz(path: Path) -> bool:
    """Whether ``path`` is a zip archive (an ``.npz``) rather than a ``.npy``;
    a missing, unreadable or foreign file is refused, and so is anything but
    a regular file (a FIFO, a link to ``/dev/zero``), before it is opened."""
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a .npy or .npz file")
    regular_file(path, "file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise ParityError(f"{path}: not a numpy .npy or .npz file")
    return magic.startswith(b"PK")


def _read_header(stream: IO[bytes], path: Path, key: str | None) -> ArrayHeader:
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
    shape, fortran, dtype = reader(io.BytesIO(length_field + text))
    return ArrayHeader(tuple(shape), dtype, bool(fortran), 8 + len(length_field) + length)


def _check(path: Path, key: str | None, header: ArrayHeader, held: int, limit: int | None) -> None:
    """Refuse ``header``'s array unless it is of real numbers, not 0-d, within
    ``limit`` and exactly the ``held`` bytes of data that follow the header."""
    what, dtype, shape = _what(path, key), header.dtype, header.shape
    if dtype.kind not in "biuf" or dtype.hasobject:
        kind = _NOT_NUMBERS.get(dtype.kind, "values that are not numbers")
        raise InputError(
            f"{what} holds {kind} (dtype {dtype}), refused: only arrays of numbers are read"
        )
    if shape == ():
        raise InputError(f"{what} is 0-d (a single value); an input array has a batch axis")
    if any(size < 0 for size in shape):
        raise InputError(f"{what} declares shape {shape}, with a negative size")
    nbytes = _nbytes(header)
    if limit is not None and nbytes > limit:
        raise InputError(
            f"{what} declares shape {shape} of {dtype}: {describe_bytes(nbytes)}, beyond the "
            f"limit of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)"
        )
    if held != nbytes:
        raise InputError(
            f"{what} declares shape {shape} of {dtype} ({nbytes} bytes), but the file holds "
            f"{held} bytes of array data"
        )


def _nbytes(header: ArrayHeader) -> int:
    return prod(header.shape) * header.dtype.itemsize


def _what(path: Path, key: str | None) -> str:
    return f"{path}: the array" if key is None else f"{path}: array {key!r}"
