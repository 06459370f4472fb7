"""The verification report: a frozen record of every check, as a table and as JSON.

JSON schema (``schema`` = 3)::

    {
      "schema": 3,
      "passed": bool,               # every check passed: the runtimes agree
      "findings": [{"kind": "padding" | "constant_output" | "state",
                    "summary": str, "detail": str}],  # about the model itself
      "bundle": str,                # the bundle folder
      "model": str | null,          # the Keras file, when TensorFlow took part
      "device": {"requested": "auto|cpu|gpu", "onnxruntime": [providers...],
                 "tensorflow": str | null, "precision": "fp32|tf32"},
      "versions": {package: version},
      "notes": [str],               # warnings and conventions found (padded steps, ...)
      "float64": str,               # "" when TensorFlow's float64 reference ran, else why not
      "checks": [{"name", "kind", "passed", "max_abs", "max_rel", "rel_l2",
                  "atol", "rtol", "needed_atol", "needed_rtol", "worst_index",
                  "worst_expected", "worst_actual", "detail",
                  "error_histogram": [int],     # counts over verify.compare.HISTOGRAM_EDGES
                  "rule": "noise" | "allclose",
                  "noise_floor": float | null,  # float32's error against float64 (noise rule)
                  "error": float | null,        # the judged error (against float64 under
                                                # the noise rule, else max_abs)
                  "ratio": float | null,        # error / noise_floor; allclose: the largest
                                                # |error| / (atol + rtol * |expected|)
                  "limit": float | null,        # the largest ratio that passes
                  "agreement": float | null,    # share of positions whose argmax agrees
                  "first_divergence": int | null,  # first step whose tokens differ
                  "output": str,                # the output compared
                  "varied": bool | null,        # the reference differs between rows
                  "used_histogram": [int],      # elements by the share of their tolerance
                                                # used, over verify.compare.USED_EDGES
                  "exact_elements": int}],      # elements with no error at all
      "generations": [{"name", "atol", "rtol", "max_abs_per_step": [float],
                       "first_failing_step": int | null, "growth": float,
                       "rule": "noise" | "allclose", "noise_per_step": [float],
                       "error_per_step": [float], "allowed_per_step": [float],
                       "used_per_step": [float]}],    # judged error / allowed, per step
      "localisation": null | {      # verify.localise: when asked, or when a check failed
        "first_divergent_layer": str | null, "graph": str | null, "step": int | null,
        "error", "noise_floor", "ratio", "limit": float | null,  # the first divergent row's
        "agreeing_before": [str], "seconds": float,
        "reason": str,              # why it could not run; "" when it ran
        "notes": [str],
        "rows": [{"graph", "step", "layer", "kind", "output", "onnx_tensor", "mapped_by",
                  "layout", "error", "noise_floor", "ratio", "limit", "note",
                  "status": "agrees" | "diverges" | "no tensor (folded into X)"}]}
    }

Non-finite numbers are written as the strings "inf", "-inf" and "nan".
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.files import replacing
from parity.verify.compare import Check
from parity.verify.localisation import Localisation
from parity.verify.terminal import columns, paragraphs, text_width

SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Finding:
    """Something verification found about the model itself, in both runtimes
    alike: not a disagreement between them, so it never fails the check on
    its own (``VerifyOptions.strict`` makes it fail the gate, with its own
    exit status).

    ``kind`` is "padding" (padding changes the model's output),
    "constant_output" (an output was the same for every drawn row, so its
    checks prove little) or "state" (a returned state is not the sequence's
    last valid step); ``summary`` says it in a sentence, ``detail`` gives the
    evidence."""

    kind: str
    summary: str
    detail: str = ""


@dataclass(frozen=True)
class StepErrors:
    """Per-step error of a whole generation: how it grows over the horizon."""

    name: str
    atol: float
    rtol: float
    max_abs_per_step: tuple[float, ...]
    first_failing_step: int | None
    growth: float = 0.0  # allclose rule: the tolerance at step t is (atol, rtol) * (1 + growth * t)
    rule: str = "allclose"
    noise_per_step: tuple[float, ...] = ()  # noise rule: each step's float32 noise floor
    error_per_step: tuple[float | None, ...] = ()  # the judged error of each step
    allowed_per_step: tuple[float, ...] = ()  # noise rule: the largest error that passes
    # the share of its tolerance each step used: its judged error over what
    # the rule allows there, at its worst element (the step fails above 1)
    used_per_step: tuple[float, ...] = ()

    @classmethod
    def of_checks(
        cls,
        name: str,
        checks: Sequence[Check],
        floors: Sequence[float] | None,
        noise: bool,
        atol: float,
        rtol: float,
        growth: float = 0.0,
    ) -> StepErrors:
        """The curve of ``checks``, one per step (or chunk), in order.

        Args:
            name: the curve's name.
            checks: each step's check.
            floors: each step's noise floor (read under the noise rule only).
            noise: whether the steps were judged by the noise rule.
            atol: the absolute tolerance the curve reports.
            rtol: the relative tolerance the curve reports.
            growth: the allclose rule's growth over the steps.
        """
        return cls(
            name=name,
            atol=atol,
            rtol=rtol,
            max_abs_per_step=tuple(check.max_abs for check in checks),
            first_failing_step=next((t for t, c in enumerate(checks) if not c.passed), None),
            growth=growth,
            rule="noise" if noise else "allclose",
            noise_per_step=tuple(float(f) for f in floors) if noise else (),
            error_per_step=tuple(check.error for check in checks),
            allowed_per_step=tuple(check.atol for check in checks) if noise else (),
            used_per_step=tuple(
                math.inf if check.ratio is None else check.ratio / check.limit for check in checks
            ),
        )


@dataclass(frozen=True)
class Report:
    bundle: str
    model: str | None
    device: dict[str, Any]
    versions: dict[str, str]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()
    generations: tuple[StepErrors, ...] = field(default_factory=tuple)
    float64: str = ""  # why TensorFlow's float64 reference did not run; "" when it ran
    findings: tuple[Finding, ...] = ()
    localisation: Localisation | None = None  # the first divergent layer (verify.localise)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "schema": SCHEMA_VERSION,
                "passed": self.passed,
                "findings": [dataclasses.asdict(finding) for finding in self.findings],
                "bundle": self.bundle,
                "model": self.model,
                "device": self.device,
                "versions": self.versions,
                "notes": list(self.notes),
                "float64": self.float64,
                "checks": [dataclasses.asdict(check) for check in self.checks],
                "generations": [dataclasses.asdict(g) for g in self.generations],
                "localisation": self.localisation and self.localisation.to_dict(),
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def table(self) -> str:
        return format_table(self)


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as the strings "nan", "inf", "-inf" (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def format_number(value: float) -> str:
    """A number as the tables print it: two decimals of scientific notation."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.2e}"


def format_table(report: Report, width: int | None = None) -> str:
    """One row per check, what its limit means, then the failures' details,
    the notes, the findings and a summary line, every line at most ``width``
    characters (the terminal's, up to :data:`MAX_WIDTH`, when None).

    ``noise`` is the float32 noise floor, ``error`` the judged error (against
    float64 under the noise rule), ``ratio`` their quotient and ``limit`` the
    largest ratio that passes: the margin is ``limit / ratio``. Under the
    allclose rule, ``ratio`` is the largest ``|error| / (atol + rtol |expected|)``
    and ``limit`` 1, with a letter that names the tolerances below the table.
    ``argmax`` is the share of positions whose predicted class or token
    agrees. Every number of every check, ``max_abs`` and ``rel_l2`` among
    them, is in the JSON report (:meth:`Report.to_json`).

    Args:
        report: the verification report.
        width: the widest line; None: :func:`text_width`.
    """
    width = text_width() if width is None else width
    tolerances: dict[tuple[float, float], str] = {}
    for check in report.checks:
        if check.rule == "allclose" and check.limit is not None:
            tolerances.setdefault((check.atol, check.rtol), chr(ord("a") + len(tolerances) % 26))
    header = ("check", "noise", "error", "ratio", "limit", "argmax", "result")
    rows = [
        (
            check.name,
            "-" if check.noise_floor is None else format_number(check.noise_floor),
            "-" if check.error is None else format_number(check.error),
            "-" if check.ratio is None else _ratio(check.ratio),
            _limit(check, tolerances),
            "-" if check.agreement is None else f"{100 * check.agreement:.1f}%",
            "PASS" if check.passed else "FAIL",
        )
        for check in report.checks
    ]
    lines = columns(header, rows, width, right=frozenset({1, 2, 3, 4, 5}))
    prose = []
    if any(check.rule == "noise" for check in report.checks):
        prose.append(
            "noise rule: error is the largest error against TensorFlow's float64 run, noise "
            "float32's own (the noise floor); error / noise is the ratio, which passes up to "
            "the limit"
        )
    for (atol, rtol), letter in tolerances.items():
        prose.append(
            f"allclose rule ({letter}): atol {format_number(atol)}, rtol {format_number(rtol)}; "
            "the ratio is the largest |error| / (atol + rtol |expected|)"
        )
    growing = {g.growth for g in report.generations if g.rule == "allclose" and g.growth}
    for growth in sorted(growing):
        prose.append(
            f"a generation under the allclose rule has its tolerance times (1 + {growth:g} t) "
            "at step t"
        )
    for check in report.failures:
        prose.append(f"FAIL {check.name}: {describe_failure(check)}")
    for check in report.checks:
        if check.first_divergence is not None:
            prose.append(
                f"tokens: {check.name}: {100 * (check.agreement or 0):.1f}% identical, "
                f"first divergence at step {check.first_divergence}"
            )
    prose += [f"note: {note}" for note in report.notes]
    if report.float64:
        prose.append(f"note: fixed tolerances (allclose rule): {report.float64}")
    for finding in report.findings:
        prose.append(f"finding ({finding.kind}): {finding.summary}")
        if finding.detail:
            prose.append(f"  {finding.detail}")
    providers = ", ".join(report.device.get("onnxruntime", ())) or "none"
    verdict = "PASSED" if report.passed else "FAILED"
    if report.findings:
        verdict += f", with {len(report.findings)} finding(s) about the model itself"
    summary = (
        f"{verdict}: {len(report.checks) - len(report.failures)}/{len(report.checks)} checks passed"
        f" (onnxruntime: {providers}; precision: {report.device.get('precision', 'fp32')})"
    )
    localised = report.localisation.lines(width) if report.localisation is not None else []
    return "\n".join(lines + paragraphs(prose, width) + localised + paragraphs([summary], width))


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2g}"


def _limit(check: Check, tolerances: dict[tuple[float, float], str]) -> str:
    if check.limit is None:
        return "-"
    if check.rule == "noise":
        return f"{check.limit:g}"
    return f"{check.limit:g} ({tolerances[(check.atol, check.rtol)]})"


def describe_failure(check: Check) -> str:
    """What went wrong, and the smallest tolerances that would have passed."""
    if check.detail:
        return check.detail
    if check.rule == "noise":
        return (
            f"error against float64 {format_number(check.error)} is {_ratio(check.ratio)} times "
            f"the float32 noise floor {format_number(check.noise_floor)} (allowed: {check.limit:g} "
            f"times); worst element {check.worst_index}: expected {check.worst_expected!r}, "
            f"got {check.worst_actual!r}; would pass with atol >= {format_number(check.max_abs)} "
            f"(--atol: the allclose rule against float32)"
        )
    return (
        f"worst element {check.worst_index}: expected {check.worst_expected!r}, "
        f"got {check.worst_actual!r}; would pass with atol >= {format_number(check.needed_atol)} "
        f"(at rtol {format_number(check.rtol)}) or rtol >= {format_number(check.needed_rtol)} "
        f"(at atol {format_number(check.atol)})"
    )


def write_json(report: Report | Any, path: Path) -> None:
    """Write a JSON report atomically.

    Args:
        report: a :class:`Report`, or any report with ``to_json()`` (the
            dataset check's).
        path: the file to write or replace.
    """
    with replacing(path) as stream:
        stream.write(report.to_json().encode("utf-8"))
