"""Reading a dataset of model inputs in batches, without loading it whole.

A dataset is an ``.npz`` file, a folder of ``.npz`` shards (one array per input
name, rows on axis 0; other arrays, labels say, are left alone), a Parquet
file, or a folder of Parquet files (one column per input, each row's array as
nested lists or as Arrow's fixed-shape tensor; other columns are left alone).
A folder's shards are taken in the order of their paths, the files of its
subfolders included.

Rows are cut into batches the same way whoever reads them: every
``batch_size`` rows from the first row of each ``.npz`` shard and of each
Parquet row group. A :class:`Unit` is a run of whole batches that one reader
reads at once, the work one worker gets: a Parquet row group, an ``.npz``
shard whose arrays are compressed (a compressed member can only be read from
its start), or a part of an ``.npz`` whose arrays are stored uncompressed
(those are mapped into memory, so that any run of rows is read alone). Within
a unit, arrays are read one batch at a time: memory holds one batch of an
``.npz`` shard, one row group of a Parquet file.

Parquet rows of different lengths (sequences of a dynamic time axis) are
batched in runs of consecutive rows of one shape, since a batch is one array
per input.
"""

from __future__ import annotations

import dataclasses
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO, Any

import numpy as np

from parity.runtime.errors import InputError, ParityError, quoted
from parity.runtime.npy import NpzMember, npz_members
from parity.runtime.paths import as_path

NPZ = "npz"
PARQUET = "parquet"
# Batches in one unit of an uncompressed .npz: enough work to be worth a
# worker's call, few enough that the units spread over the workers.
BATCHES_PER_UNIT = 8
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a zip member compressed in a way zipfile cannot read
    RuntimeError,  # an encrypted zip member
    struct.error,
)


@dataclass(frozen=True)
class Shard:
    """One file of the dataset and its number of rows."""

    path: str
    format: str  # NPZ or PARQUET
    rows: int
    row_groups: tuple[int, ...] = ()  # Parquet: the rows of each row group


@dataclass(frozen=True)
class Unit:
    """A run of whole batches of one shard, read by one reader."""

    shard: str
    format: str
    lo: int  # the first row, in the shard
    hi: int  # one past the last row, in the shard
    start: int  # the dataset index of row ``lo``
    group: int = -1  # Parquet: the row group
    group_lo: int = 0  # Parquet: the row group's first row, in the shard

    @property
    def rows(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of one shard, one array per input."""

    shard: str
    shard_row: int  # the first row's index in the shard
    start: int  # the first row's index in the dataset
    arrays: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(next(iter(self.arrays.values())))

    def where(self, row: int) -> str:
        """Where row ``row`` of the batch is: its shard, its row there and in the dataset.

        Args:
            row: the row's index in the batch.
        """
        return f"{self.shard}: row {self.shard_row + row} (dataset row {self.start + row})"


def list_shards(data: str | Path, names: Sequence[str]) -> tuple[Shard, ...]:
    """The dataset's shards, each checked to hold every input with one number of rows.

    Args:
        data: an ``.npz`` or Parquet file, or a folder of them.
        names: the input names every shard must hold.

    Raises:
        ParityError: no such path, a folder without shards, an unreadable
            shard or one that lacks an input (named with the shard).
    """
    path = as_path(data, "data")
    if path.is_dir():
        files = sorted(
            file
            for file in path.rglob("*")
            if file.is_file() and file.suffix in (".npz", ".parquet", ".parq", ".pq")
        )
        if not files:
            raise ParityError(f"{path}: no .npz or .parquet shards in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise ParityError(f"{path}: no such file or folder")
    return tuple(_shard(file, names) for file in files)


def _shard(path: Path, names: Sequence[str]) -> Shard:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable shard ({exc.strerror or exc})") from None
    if magic.startswith(b"PK"):
        members = npz_members(path, names, limit=None)  # read a batch at a time
        counts = {name: member.header.shape[0] for name, member in members.items()}
        if len(set(counts.values())) > 1:
            described = ", ".join(f"{name!r} {rows}" for name, rows in counts.items())
            raise InputError(f"{path}: the inputs have different numbers of rows ({described})")
        return Shard(str(path), NPZ, next(iter(counts.values())))
    if magic == b"PAR1":
        return _parquet_shard(path, names)
    raise ParityError(f"{path}: not an .npz or Parquet file")


def plan_units(shards: Sequence[Shard], batch_size: int) -> tuple[Unit, ...]:
    """Every shard's rows as units of whole batches, in dataset order.

    Args:
        shards: from :func:`list_shards`.
        batch_size: rows per batch.
    """
    units = []
    start = 0
    for shard in shards:
        if shard.format == PARQUET:
            lo = 0
            for group, rows in enumerate(shard.row_groups):
                if rows:
                    units.append(Unit(shard.path, PARQUET, lo, lo + rows, start + lo, group, lo))
                lo += rows
            start += shard.rows
            continue
        step = batch_size * BATCHES_PER_UNIT if _npz_mappable(shard.path) else shard.rows
        for lo in range(0, shard.rows, max(step, 1)):
            hi = min(lo + step, shard.rows)
            units.append(Unit(shard.path, NPZ, lo, hi, start + lo))
        start += shard.rows
    return tuple(units)


def read_batches(unit: Unit, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    """The unit's rows, ``batch_size`` at a time (Parquet rows of different
    shapes in shorter runs of one shape).

    Args:
        unit: from :func:`plan_units`.
        names: the inputs to read.
        batch_size: rows per batch.

    Raises:
        ParityError: the shard cannot be read (named, with the row where it
            matters).
    """
    if unit.format == PARQUET:
        yield from _parquet_batches(unit, names, batch_size)
    else:
        yield from _npz_batches(unit, names, batch_size)


def row_shapes(shard: Shard, names: Sequence[str]) -> dict[str, tuple[tuple[int, ...], int]]:
    """The shape of one row of each input, and its item size, as the shard's
    first row has them: what a batch of this dataset weighs.

    Args:
        shard: the first shard.
        names: the inputs.
    """
    unit = next(iter(plan_units([shard], 1)), None)
    if unit is None:
        return {}
    first = next(read_batches(dataclasses.replace(unit, hi=unit.lo + 1), names, 1))
    return {name: (array.shape[1:], array.dtype.itemsize) for name, array in first.arrays.items()}


# ----- .npz


def _npz_mappable(path: str) -> bool:
    """Whether every array of the shard is stored uncompressed (and so can be
    mapped into memory and read from any row)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable shard ({quoted(exc)})") from None


def _npz_batches(unit: Unit, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    path = unit.shard
    try:
        members = npz_members(path, names, limit=None)
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            readers = {name: _member_reader(archive, raw, path, m) for name, m in members.items()}
            for lo in range(unit.lo, unit.hi, batch_size):
                hi = min(lo + batch_size, unit.hi)
                arrays = {name: read(lo, hi) for name, read in readers.items()}
                yield Batch(path, lo, unit.start + lo - unit.lo, arrays)
    except ParityError:
        raise
    except _READ_ERRORS as exc:
        raise ParityError(f"{path}: unreadable shard ({quoted(exc)})") from None


def _member_reader(
    archive: zipfile.ZipFile, raw: IO[bytes], path: str, npz_member: NpzMember
) -> Any:
    """A function ``(lo, hi) -> rows lo..hi of the array``, called with
    increasing rows: mapped where the member is stored, streamed where it is
    compressed, read whole only where it is compressed in Fortran order."""
    info, member = npz_member.info, npz_member.header
    if info.compress_type == zipfile.ZIP_STORED:
        raw.seek(info.header_offset)
        local = raw.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ParityError(f"{path}: unreadable shard (bad local header of {info.filename})")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        offset = info.header_offset + 30 + name_length + extra_length + member.offset
        if not all(member.shape):
            mapped = np.empty(member.shape, member.dtype)
        else:
            mapped = np.memmap(
                path, member.dtype, "r", offset, member.shape, "F" if member.fortran else "C"
            )
        return lambda lo, hi: np.array(mapped[lo:hi])
    if member.fortran:
        with archive.open(info) as stream:
            whole = np.lib.format.read_array(stream, allow_pickle=False)
        return lambda lo, hi: whole[lo:hi].copy()
    stream = archive.open(info)
    row_bytes = prod(member.shape[1:]) * member.dtype.itemsize
    stream.read(member.offset)
    position = [0]

    def read(lo: int, hi: int) -> np.ndarray:
        if lo != position[0]:  # rows are read in order; skip to the first one asked for
            _skip(stream, (lo - position[0]) * row_bytes)
        data = stream.read((hi - lo) * row_bytes)
        if len(data) != (hi - lo) * row_bytes:
            raise ParityError(f"{path}: unreadable shard ({info.filename} ends early)")
        position[0] = hi
        return np.frombuffer(data, member.dtype).reshape(hi - lo, *member.shape[1:]).copy()

    return read


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        chunk = stream.read(min(size, 1 << 24))
        if not chunk:
            raise EOFError("the array ends early")
        size -= len(chunk)


# ----- Parquet


def _parquet_shard(path: Path, names: Sequence[str]) -> Shard:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        columns = file.schema_arrow.names
        missing = [name for name in names if name not in columns]
        if missing:
            raise InputError(
                f"{path}: no column named {missing[0]!r} for that input "
                f"(has: {', '.join(columns) or 'none'})"
            )
        metadata = file.metadata
        groups = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    except (pa.ArrowException, OSError) as exc:
        raise ParityError(f"{path}: unreadable shard ({quoted(exc)})") from None
    return Shard(str(path), PARQUET, sum(groups), groups)


def _parquet_batches(unit: Unit, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(unit.shard).read_row_group(unit.group, columns=list(names))
    except (pa.ArrowException, OSError) as exc:
        raise ParityError(f"{unit.shard}: unreadable shard ({quoted(exc)})") from None
    where = unit.shard
    for lo in range(unit.lo, unit.hi, batch_size):
        rows = min(batch_size, unit.hi - lo)
        start = unit.start + lo - unit.lo
        columns = {
            name: table.column(name).slice(lo - unit.group_lo, rows).combine_chunks()
            for name in names
        }
        try:
            arrays = {name: _column_array(column) for name, column in columns.items()}
        except _Ragged:
            yield from _runs_of_one_shape(unit, columns, lo, start, where)
            continue
        except _NotNumbers:
            yield from _runs_of_one_shape(unit, columns, lo, start, where)
            continue
        yield Batch(unit.shard, lo, start, arrays)


class _Ragged(Exception):
    """Rows of a column have different lengths at some level."""


class _NotNumbers(Exception):
    """A column holds nulls or values that are not numbers (the message says which)."""


def _column_array(column: Any) -> np.ndarray:
    """An Arrow column of nested lists (or fixed-shape tensors) as one array,
    rows on axis 0. Raises :class:`_Ragged` where rows differ in shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    dims = []
    level = column
    while (
        pa.types.is_list(level.type)
        or pa.types.is_large_list(level.type)
        or (pa.types.is_fixed_size_list(level.type))
    ):
        if level.null_count:
            raise _NotNumbers("holds a null list")
        lengths = pc.list_value_length(level).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise _Ragged
        dims.append(int(lengths[0]) if len(lengths) else 0)
        level = level.flatten()
    if not (pa.types.is_integer(level.type) or pa.types.is_floating(level.type)
            or pa.types.is_boolean(level.type)):  # fmt: skip
        raise _NotNumbers(f"holds {level.type} values, not numbers")
    if level.null_count:
        raise _NotNumbers("holds a null value")
    values = level.to_numpy(zero_copy_only=False)
    return values.reshape(len(column), *dims)


def _runs_of_one_shape(
    unit: Unit, columns: dict[str, Any], lo: int, start: int, where: str
) -> Iterator[Batch]:
    """Rows of different shapes, as batches of consecutive rows of one shape."""
    rows = len(next(iter(columns.values())))
    arrays: list[dict[str, np.ndarray]] = []
    for row in range(rows):
        arrays.append({})
        for name, column in columns.items():
            try:
                arrays[row][name] = _column_array(column.slice(row, 1))
            except (_Ragged, _NotNumbers) as exc:
                what = str(exc) or "is ragged (its lists differ in length)"
                raise InputError(
                    f"{where}: row {lo + row} (dataset row {start + row}): column {name!r} {what}"
                ) from None
    first = 0
    for row in range(1, rows + 1):
        if row == rows or _shapes(arrays[row]) != _shapes(arrays[first]):
            batch = {name: np.concatenate([a[name] for a in arrays[first:row]]) for name in columns}
            yield Batch(unit.shard, lo + first, start + first, batch)
            first = row


def _shapes(arrays: dict[str, np.ndarray]) -> tuple[tuple[int, ...], ...]:
    return tuple(array.shape for array in arrays.values())
