"""Reading a dataset of model inputs in batches, without loading it whole.

A dataset is an ``.npz`` file, a folder of ``.npz`` shards (one array per input
name, rows on axis 0; other arrays, labels say, are left alone), a Parquet
file, or a folder of Parquet files (one column per input, each row's array as
nested lists or as Arrow's fixed-shape tensor; other columns are left alone).
A folder's shards are taken in the order of their paths, the files of its
subfolders included.

Rows are cut into batches the same way whoever reads them: every
``batch_size`` rows from the first row of each ``.npz`` shard and of each
Parquet row group, except that consecutive shards (or row groups) of fewer
rows than a batch are joined, whole, into batches of at most ``batch_size``
rows: a folder of 20,000 one-row shards runs as full batches, not as 20,000
runs of one row (each row keeps its shard and its row there). A
:class:`Unit` is what one reader reads at once, the work one worker gets:
whole batches of one :class:`Span` (a Parquet row group, an ``.npz`` shard
whose arrays are compressed, since a compressed member can only be read from
its start, or a part of an ``.npz`` whose arrays are stored uncompressed,
which are mapped into memory so that any run of rows is read alone), or
small spans joined. Arrays are read one batch at a time: memory holds one
batch, of an ``.npz`` shard and of a Parquet row group alike.

Parquet rows of different lengths (sequences of a dynamic time axis) are
batched in runs of consecutive rows of one shape, since a batch is one array
per input.
"""

from __future__ import annotations

import dataclasses
import os
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
from parity.runtime.paths import as_path, file_kind, regular_file

NPZ = "npz"
PARQUET = "parquet"
SHARD_SUFFIXES = (".npz", ".parquet", ".parq", ".pq")
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
class Span:
    """Rows ``lo`` to ``hi`` of one shard (of one Parquet row group)."""

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
class Unit:
    """The rows one reader reads at once: whole batches of one :class:`Span`,
    or consecutive spans smaller than a batch, which make one batch together."""

    spans: tuple[Span, ...]

    @property
    def rows(self) -> int:
        return sum(span.rows for span in self.spans)


@dataclass(frozen=True)
class Source:
    """Where a run of a batch's rows comes from: ``rows`` rows of ``shard``
    from its row ``row``."""

    shard: str
    row: int
    rows: int


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of the dataset, one array per input, and the shards
    they come from, in order."""

    start: int  # the first row's index in the dataset
    arrays: dict[str, np.ndarray]
    sources: tuple[Source, ...]

    @property
    def rows(self) -> int:
        return len(next(iter(self.arrays.values())))

    def origin(self, row: int) -> tuple[str, int]:
        """The shard of row ``row`` of the batch, and its row there.

        Args:
            row: the row's index in the batch.
        """
        for source in self.sources:
            if row < source.rows:
                return source.shard, source.row + row
            row -= source.rows
        raise IndexError(row)

    def where(self, row: int) -> str:
        """Where row ``row`` of the batch is: its shard, its row there and in the dataset.

        Args:
            row: the row's index in the batch.
        """
        shard, shard_row = self.origin(row)
        return f"{shard}: row {shard_row} (dataset row {self.start + row})"

    def span(self) -> str:
        """Where the batch's rows are: a shard's rows, or dataset rows across shards."""
        first, last = self.sources[0], self.sources[-1]
        if len(self.sources) == 1:
            return f"{first.shard}: rows {first.row} to {first.row + first.rows - 1}"
        return (
            f"dataset rows {self.start} to {self.start + self.rows - 1} "
            f"({first.shard} to {last.shard})"
        )


def list_shards(data: str | Path, names: Sequence[str]) -> tuple[Shard, ...]:
    """The dataset's shards, each checked to hold every input with one number of rows.

    Args:
        data: an ``.npz`` or Parquet file, or a folder of them.
        names: the input names every shard must hold.

    Raises:
        ParityError: no such path, a folder without shards, an unreadable
            shard or one that lacks an input (named with the shard), a
            shard that is not a regular file (a FIFO, a link to a device).
    """
    path = as_path(data, "data")
    if path.is_dir():
        files = sorted(file for file in path.rglob("*") if file.suffix in SHARD_SUFFIXES)
        for file in files:
            kind = file_kind(file)
            if kind:  # skipped, its rows would silently be missing from the report
                raise ParityError(
                    f"{file}: is {kind}, named like a shard; refused (reading it could block or "
                    "never end)"
                )
        files = [file for file in files if file.is_file()]
        if not files:
            raise ParityError(f"{path}: no .npz or .parquet shards in this folder")
    elif os.path.lexists(path):
        files = [regular_file(path, "shard")]
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
    """Every shard's rows as units, in dataset order: whole batches of one
    span (a Parquet row group, a part of an uncompressed ``.npz``, a whole
    compressed one), or consecutive spans of fewer rows than a batch joined
    into one batch (a folder of one-row shards runs as full batches).

    Args:
        shards: from :func:`list_shards`.
        batch_size: rows per batch.
    """
    units: list[Unit] = []
    joined: list[Span] = []
    for span in _spans(shards, batch_size):
        if joined and sum(s.rows for s in joined) + span.rows > batch_size:
            units.append(Unit(tuple(joined)))
            joined = []
        if span.rows >= batch_size:
            units.append(Unit((span,)))
        else:
            joined.append(span)
    if joined:
        units.append(Unit(tuple(joined)))
    return tuple(units)


def _spans(shards: Sequence[Shard], batch_size: int) -> Iterator[Span]:
    """Every shard's rows as spans of whole batches, in dataset order."""
    start = 0
    for shard in shards:
        if shard.format == PARQUET:
            lo = 0
            for group, rows in enumerate(shard.row_groups):
                if rows:
                    yield Span(shard.path, PARQUET, lo, lo + rows, start + lo, group, lo)
                lo += rows
            start += shard.rows
            continue
        step = batch_size * BATCHES_PER_UNIT if _npz_mappable(shard.path) else shard.rows
        for lo in range(0, shard.rows, max(step, 1)):
            hi = min(lo + step, shard.rows)
            yield Span(shard.path, NPZ, lo, hi, start + lo)
        start += shard.rows


def read_batches(unit: Unit, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    """The unit's rows, ``batch_size`` at a time (Parquet rows of different
    shapes in shorter runs of one shape); a unit of several spans as one
    batch where their rows are of one shape.

    Args:
        unit: from :func:`plan_units`.
        names: the inputs to read.
        batch_size: rows per batch.

    Raises:
        ParityError: the shard cannot be read (named, with the row where it
            matters).
    """
    if len(unit.spans) == 1:
        yield from _span_batches(unit.spans[0], names, batch_size)
        return
    batches = [batch for span in unit.spans for batch in _span_batches(span, names, batch_size)]
    first = 0
    for index in range(1, len(batches) + 1):
        if index == len(batches) or _row_kinds(batches[index]) != _row_kinds(batches[first]):
            run = batches[first:index]
            arrays = {name: np.concatenate([b.arrays[name] for b in run]) for name in names}
            sources = tuple(source for batch in run for source in batch.sources)
            yield Batch(run[0].start, arrays, sources)
            first = index


def _span_batches(span: Span, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    if span.format == PARQUET:
        yield from _parquet_batches(span, names, batch_size)
    else:
        yield from _npz_batches(span, names, batch_size)


def _row_kinds(batch: Batch) -> tuple:
    """What a batch's rows are: each input's row shape and dtype."""
    return tuple((a.shape[1:], a.dtype) for a in batch.arrays.values())


def row_shapes(shard: Shard, names: Sequence[str]) -> dict[str, tuple[tuple[int, ...], int]]:
    """The shape of one row of each input, and its item size, as the shard's
    first row has them: what a batch of this dataset weighs.

    Args:
        shard: the first shard.
        names: the inputs.
    """
    span = next(_spans([shard], 1), None)
    if span is None:
        return {}
    first = next(_span_batches(dataclasses.replace(span, hi=span.lo + 1), names, 1))
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


def _npz_batches(span: Span, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    path = span.shard
    try:
        members = npz_members(path, names, limit=None)
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            readers = {name: _member_reader(archive, raw, path, m) for name, m in members.items()}
            for lo in range(span.lo, span.hi, batch_size):
                hi = min(lo + batch_size, span.hi)
                arrays = {name: read(lo, hi) for name, read in readers.items()}
                yield Batch(span.start + lo - span.lo, arrays, (Source(path, lo, hi - lo),))
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


def _parquet_batches(span: Span, names: Sequence[str], batch_size: int) -> Iterator[Batch]:
    """The span's rows, read from its row group ``batch_size`` rows at a
    time: memory holds a batch, never the whole row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(span.shard)
        records = file.iter_batches(batch_size, row_groups=[span.group], columns=list(names))
        for lo, table in _rows_of(span, records, batch_size):
            start = span.start + lo - span.lo
            columns = {name: table.column(name).combine_chunks() for name in names}
            try:
                arrays = {name: _column_array(column) for name, column in columns.items()}
            except (_Ragged, _NotNumbers):
                yield from _runs_of_one_shape(span, columns, lo, start)
                continue
            yield Batch(start, arrays, (Source(span.shard, lo, len(table)),))
    except (pa.ArrowException, OSError) as exc:
        raise ParityError(f"{span.shard}: unreadable shard ({quoted(exc)})") from None


def _rows_of(span: Span, records: Iterator[Any], batch_size: int) -> Iterator[tuple[int, Any]]:
    """``(lo, table)``: the span's rows from ``lo``, ``batch_size`` at a time,
    from the record batches of its row group (read from the group's first row)."""
    import pyarrow as pa

    skip, lo, pending = span.lo - span.group_lo, span.lo, None
    for record in records:
        table = pa.Table.from_batches([record])
        cut = min(skip, len(table))
        table, skip = table.slice(cut), skip - cut
        pending = table if pending is None else pa.concat_tables([pending, table])
        while lo < span.hi and len(pending) >= min(batch_size, span.hi - lo):
            rows = min(batch_size, span.hi - lo)
            yield lo, pending.slice(0, rows)
            pending, lo = pending.slice(rows), lo + rows
        if lo >= span.hi:
            return
    raise ParityError(f"{span.shard}: unreadable shard (row group {span.group} ends early)")


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


def _runs_of_one_shape(span: Span, columns: dict[str, Any], lo: int, start: int) -> Iterator[Batch]:
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
                    f"{span.shard}: row {lo + row} (dataset row {start + row}): column {name!r} "
                    f"{what}"
                ) from None
    first = 0
    for row in range(1, rows + 1):
        if row == rows or _shapes(arrays[row]) != _shapes(arrays[first]):
            batch = {name: np.concatenate([a[name] for a in arrays[first:row]]) for name in columns}
            yield Batch(start + first, batch, (Source(span.shard, lo + first, row - first),))
            first = row


def _shapes(arrays: dict[str, np.ndarray]) -> tuple[tuple[int, ...], ...]:
    return tuple(array.shape for array in arrays.values())
