"""The report of a whole dataset: a frozen record, as a table and as JSON.

JSON schema (``schema`` = 1, ``kind`` = "dataset")::

    {
      "schema": 1, "kind": "dataset",
      "passed": bool,                 # every row of every output within tolerance
      "bundle": str, "model": str, "data": str,
      "engine": "local|ray", "workers": int, "batch_size": int,
      "shards": int, "rows": int, "rows_failed": int,
      "seconds": float,               # from the first batch's start to the last's end
      "rows_per_second": float,
      "device": {"requested", "onnxruntime": [providers...], "tensorflow"},
      "versions": {package: version},
      "generation": {"steps": int, "path": "loop graph|step loop"} | null,
      "outputs": [{"name", "kind": "output|generation", "atol", "rtol", "growth",
                   "rows_failed", "p50", "p99", "max_abs",   # of each row's max abs error
                   "first_failing_step": int | null,
                   "agreement": {"per": "row|step", "agree", "total", "share",
                                 "rows_differing", "first_divergent_step": int | null,
                                 "rows": [int]} | null}],    # the first rows that differ
      "worst": [{"row", "shard", "shard_row", "output", "step", "max_abs", "ratio",
                 "index", "expected", "actual"}],           # worst first, at most 20
      "failures_file": str | null,    # the worst rows' inputs, for --inputs
      "notes": [str]
    }

``ratio`` is the row's largest ``|onnx - tf| / (atol + rtol * |tf|)``: a row
fails when it is above 1. Non-finite numbers are written as the strings
"inf", "-inf" and "nan".
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.files import replacing
from parity.verify.report import format_number, jsonable
from parity.verify.row_errors import FailedRow
from parity.verify.terminal import columns, paragraphs, text_width

SCHEMA_VERSION = 1
# The array of a failures file that holds each row's index in the dataset.


@dataclass(frozen=True)
class Agreement:
    """How often both runtimes pick the same class (or token): the argmax over
    the output's last axis, per row or per step."""

    per: str  # "row" or "step"
    agree: int
    total: int
    rows_differing: int
    first_divergent_step: int | None  # the earliest step where a row differs
    rows: tuple[int, ...]  # the first rows that differ, by dataset index

    @property
    def share(self) -> float:
        return self.agree / self.total if self.total else 1.0


@dataclass(frozen=True)
class OutputSummary:
    """One output over the whole dataset."""

    name: str
    kind: str  # "output", or "generation" for a seq2seq bundle's generated output
    atol: float
    rtol: float
    growth: float  # a generation's tolerance at step t is (atol, rtol) * (1 + growth * t)
    rows_failed: int
    p50: float  # percentiles of the rows' largest absolute errors
    p99: float
    max_abs: float
    first_failing_step: int | None
    agreement: Agreement | None


@dataclass(frozen=True)
class DatasetReport:
    """Every row of a dataset through both runtimes. ``failed_inputs`` holds the
    worst failing rows' inputs (those of the worst row's shapes) and
    ``row_max_abs`` every row's largest error per output; neither is in the JSON."""

    bundle: str
    model: str
    data: str
    engine: str
    workers: int
    batch_size: int
    shards: int
    rows: int
    rows_failed: int
    outputs: tuple[OutputSummary, ...]
    worst: tuple[FailedRow, ...]
    seconds: float
    device: dict[str, Any]
    versions: dict[str, str]
    generation: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    failures_file: str | None = None
    failed_inputs: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    row_max_abs: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def passed(self) -> bool:
        return self.rows > 0 and self.rows_failed == 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "schema": SCHEMA_VERSION,
                "kind": "dataset",
                "passed": self.passed,
                "bundle": self.bundle,
                "model": self.model,
                "data": self.data,
                "engine": self.engine,
                "workers": self.workers,
                "batch_size": self.batch_size,
                "shards": self.shards,
                "rows": self.rows,
                "rows_failed": self.rows_failed,
                "seconds": self.seconds,
                "rows_per_second": self.rows_per_second,
                "device": self.device,
                "versions": self.versions,
                "generation": self.generation,
                "outputs": [_output_dict(output) for output in self.outputs],
                "worst": [dataclasses.asdict(row) for row in self.worst],
                "failures_file": self.failures_file,
                "notes": list(self.notes),
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        return format_table(self)


def _output_dict(output: OutputSummary) -> dict[str, Any]:
    data = dataclasses.asdict(output)
    if output.agreement is not None:
        data["agreement"]["share"] = output.agreement.share
    return data


def format_table(report: DatasetReport, width: int | None = None) -> str:
    """One row per output, each output's tolerance, the worst failing rows,
    then a summary line, every line at most ``width`` characters (the
    terminal's, up to :data:`parity.verify.terminal.MAX_WIDTH`, when None).

    Args:
        report: the dataset report.
        width: the widest line; None: :func:`parity.verify.terminal.text_width`.
    """
    width = text_width() if width is None else width
    prose = [
        f"dataset {report.data}: {report.rows:,} rows in {report.shards} shard(s), "
        f"batches of {report.batch_size}, {report.engine} with {report.workers} worker(s)"
    ]
    if report.generation:
        prose.append(
            f"generation: {report.generation['steps']} steps from each row's encoder input "
            f"({report.generation['path']})"
        )
    lines = paragraphs(prose, width)
    header = ("output", "rows failed", "p50 abs", "p99 abs", "max abs", "argmax", "result")
    rows = [
        (
            output.name,
            f"{output.rows_failed}/{report.rows}",
            format_number(output.p50),
            format_number(output.p99),
            format_number(output.max_abs),
            _describe_agreement(output.agreement),
            "FAIL" if output.rows_failed else "PASS",
        )
        for output in report.outputs
    ]
    lines += columns(header, rows, width, right=frozenset({1, 2, 3, 4, 5}))
    prose = [_describe_tolerance(output) for output in report.outputs]
    for output in report.outputs:
        agreement = output.agreement
        if agreement is not None and agreement.rows_differing:
            step = agreement.first_divergent_step
            prose.append(
                f"note: {output.name}: the argmax differs in {agreement.rows_differing} row(s)"
                + ("" if step is None else f", first at step {step}")
                + f" (rows {', '.join(map(str, agreement.rows))})"
            )
        if output.first_failing_step is not None:
            prose.append(
                f"note: {output.name}: the earliest step that leaves tolerance is "
                f"step {output.first_failing_step}"
            )
    if report.worst:
        prose.append(f"worst failing rows ({len(report.worst)} of {report.rows_failed}):")
        prose += [f"  {describe_row(row)}" for row in report.worst]
    if report.failures_file:
        prose.append(f"failing rows' inputs: {report.failures_file}")
    prose += [f"note: {note}" for note in report.notes]
    verdict = "PASSED" if report.passed else "FAILED"
    prose.append(
        f"{verdict}: {report.rows - report.rows_failed:,}/{report.rows:,} rows within tolerance "
        f"({report.rows_per_second:,.0f} rows/s)"
    )
    return "\n".join(lines + paragraphs(prose, width))


def _describe_tolerance(output: OutputSummary) -> str:
    growth = f", times (1 + {output.growth:g} t) at step t" if output.growth else ""
    return (
        f"tolerance of {output.name}: |error| <= {format_number(output.atol)} + "
        f"{format_number(output.rtol)} |expected|{growth}"
    )


def _describe_agreement(agreement: Agreement | None) -> str:
    if agreement is None:
        return "-"
    return f"{agreement.share:.4%} of {agreement.per}s"


def describe_row(row: FailedRow) -> str:
    """One failing row: where it is, its worst output and element, and by how much.

    Args:
        row: the row.
    """
    step = "" if row.step is None else f" (first failing step {row.step})"
    element = (
        f"element {row.index}: expected {row.expected!r}, got {row.actual!r}; "
        if math.isfinite(row.max_abs)
        else ""
    )
    return (
        f"row {row.row} ({row.shard} row {row.shard_row}): {row.output}{step}: {element}"
        f"max abs {format_number(row.max_abs)}, {format_number(row.ratio)} x the tolerance"
    )


def write_failures(report: DatasetReport, path: Path) -> DatasetReport:
    """Write the worst failing rows' inputs to an ``.npz`` (one array per input
    name, as ``parity verify --inputs`` reads it, and :data:`DATASET_ROW`, each
    row's index in the dataset), atomically.

    Args:
        report: a report with failing rows.
        path: the ``.npz`` to write or replace.

    Returns:
        The report, naming the file.
    """
    arrays = dict(report.failed_inputs)
    with replacing(path) as stream:
        np.savez(stream, **arrays)
    return dataclasses.replace(report, failures_file=str(path))
