"""The verification report: a frozen record of every check, as a table and as JSON.

JSON schema (``schema`` = 1)::

    {
      "schema": 1,
      "passed": bool,               # every check passed
      "bundle": str,                # the bundle folder
      "model": str | null,          # the Keras file, when TensorFlow took part
      "device": {"requested": "auto|cpu|gpu", "onnxruntime": [providers...],
                 "tensorflow": str | null, "precision": "fp32|tf32"},
      "versions": {package: version},
      "notes": [str],               # warnings and conventions found (padded steps, ...)
      "checks": [{"name", "kind", "passed", "max_abs", "max_rel", "rel_l2",
                  "atol", "rtol", "needed_atol", "needed_rtol", "worst_index",
                  "worst_expected", "worst_actual", "detail",
                  "error_histogram": [int]}],   # counts over verify.compare.HISTOGRAM_EDGES
      "generations": [{"name", "atol", "rtol", "max_abs_per_step": [float],
                       "first_failing_step": int | null, "growth": float}]
    }

Non-finite numbers are written as the strings "inf", "-inf" and "nan".
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.runtime.paths import replaced_atomically
from parity.verify.compare import Check

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StepErrors:
    """Per-step error of a whole generation: how it grows over the horizon."""

    name: str
    atol: float
    rtol: float
    max_abs_per_step: tuple[float, ...]
    first_failing_step: int | None
    growth: float = 0.0  # the tolerance at step t is (atol, rtol) * (1 + growth * t)


@dataclass(frozen=True)
class Report:
    bundle: str
    model: str | None
    device: dict[str, Any]
    versions: dict[str, str]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()
    generations: tuple[StepErrors, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "schema": SCHEMA_VERSION,
                "passed": self.passed,
                "bundle": self.bundle,
                "model": self.model,
                "device": self.device,
                "versions": self.versions,
                "notes": list(self.notes),
                "checks": [dataclasses.asdict(check) for check in self.checks],
                "generations": [dataclasses.asdict(g) for g in self.generations],
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        return format_table(self)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.2e}"


def format_table(report: Report) -> str:
    """One row per check, then the failures' details and a summary line."""
    header = ("check", "max abs", "max rel", "rel L2", "atol", "rtol", "result")
    rows = [
        (
            check.name,
            _number(check.max_abs),
            _number(check.max_rel),
            _number(check.rel_l2),
            _number(check.atol),
            _number(check.rtol),
            "PASS" if check.passed else "FAIL",
        )
        for check in report.checks
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for check in report.failures:
        lines.append(f"FAIL {check.name}: {describe_failure(check)}")
    for note in report.notes:
        lines.append(f"note: {note}")
    providers = ", ".join(report.device.get("onnxruntime", ())) or "none"
    verdict = "PASSED" if report.passed else "FAILED"
    lines.append(
        f"{verdict}: {len(report.checks) - len(report.failures)}/{len(report.checks)} checks passed"
        f" (onnxruntime: {providers}; precision: {report.device.get('precision', 'fp32')})"
    )
    return "\n".join(lines)


def describe_failure(check: Check) -> str:
    """What went wrong, and the smallest tolerances that would have passed."""
    if check.detail:
        return check.detail
    return (
        f"worst element {check.worst_index}: expected {check.worst_expected!r}, "
        f"got {check.worst_actual!r}; would pass with atol >= {_number(check.needed_atol)} "
        f"(at rtol {_number(check.rtol)}) or rtol >= {_number(check.needed_rtol)} "
        f"(at atol {_number(check.atol)})"
    )


def write_json(report: Report, path: Path) -> None:
    """Write the JSON report atomically.

    Args:
        report: the report.
        path: the file to write or replace.
    """
    with replaced_atomically(path) as temporary:
        temporary.write_text(report.to_json(), encoding="utf-8")
