"""Comparing one array from TensorFlow with the same array from ONNX Runtime.

A comparison never raises for a numerical disagreement: it returns a
:class:`Check` that says how far apart the arrays are and whether they pass
numpy's allclose rule ``|actual - expected| <= atol + rtol * |expected|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """The allclose rule's two knobs."""

    atol: float
    rtol: float

    def scaled(self, factor: float) -> Tolerance:
        return Tolerance(self.atol * factor, self.rtol * factor)


@dataclass(frozen=True)
class Check:
    """The outcome of one comparison, as the report shows it.

    ``needed_atol`` is the smallest atol that passes at this rtol, and
    ``needed_rtol`` the smallest rtol that passes at this atol (``inf`` where
    no rtol can, because the expected value is zero)."""

    name: str
    kind: str
    passed: bool
    max_abs: float
    max_rel: float
    rel_l2: float
    atol: float
    rtol: float
    needed_atol: float = 0.0
    needed_rtol: float = 0.0
    worst_index: tuple[int, ...] | None = None
    worst_expected: float | None = None
    worst_actual: float | None = None
    detail: str = ""
    error_histogram: tuple[int, ...] = ()


# Bin edges of ``Check.error_histogram``: absolute errors from 1e-12 to 1 on a log scale
# (errors below 1e-12 fall into the first bin, above 1 into the last).
HISTOGRAM_EDGES = tuple(float(edge) for edge in np.logspace(-12, 0, 25))


def compare_arrays(
    name: str, kind: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance
) -> Check:
    """Compare ``actual`` (ONNX Runtime) with ``expected`` (the reference)."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.shape != actual.shape:
        return _failed(
            name, kind, tolerance, f"shape {actual.shape} where {expected.shape} was expected"
        )
    if expected.dtype != actual.dtype:
        return _failed(
            name, kind, tolerance, f"dtype {actual.dtype} where {expected.dtype} was expected"
        )
    if expected.size == 0:
        return Check(name, kind, True, 0.0, 0.0, 0.0, tolerance.atol, tolerance.rtol)
    a = actual.astype(np.float64)
    b = expected.astype(np.float64)
    nonfinite = _nonfinite_mismatch(a, b)
    if nonfinite is not None:
        index = tuple(int(i) for i in np.argwhere(nonfinite)[0])
        return _failed(
            name,
            kind,
            tolerance,
            f"non-finite value on one side only at {index}: {a[index]} vs {b[index]}",
            worst=(index, float(b[index]), float(a[index])),
        )
    finite = np.isfinite(a) & np.isfinite(b)
    a = np.where(finite, a, 0.0)
    b = np.where(finite, b, 0.0)
    error = np.abs(a - b)
    magnitude = np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(error == 0, 0.0, error / magnitude)
        needed_rtol_each = np.where(
            error <= tolerance.atol, 0.0, (error - tolerance.atol) / magnitude
        )
    excess = error - (tolerance.atol + tolerance.rtol * magnitude)
    flat = int(np.argmax(excess))
    index = tuple(int(i) for i in np.unravel_index(flat, error.shape))
    norm = float(np.linalg.norm(b))
    diff_norm = float(np.linalg.norm(a - b))
    rel_l2 = diff_norm / norm if norm > 0 else (0.0 if diff_norm == 0 else float("inf"))
    return Check(
        name=name,
        kind=kind,
        passed=bool(excess.max() <= 0),
        max_abs=float(error.max()),
        max_rel=float(relative.max()),
        rel_l2=rel_l2,
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        needed_atol=float(max(0.0, (error - tolerance.rtol * magnitude).max())),
        needed_rtol=float(needed_rtol_each.max()),
        worst_index=index,
        worst_expected=float(b[index]),
        worst_actual=float(a[index]),
        error_histogram=tuple(
            int(count)
            for count in np.histogram(np.clip(error, 1e-12, 1.0), bins=HISTOGRAM_EDGES)[0]
        ),
    )


def _nonfinite_mismatch(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Where exactly one side is NaN, or the sides are different infinities."""
    nan_mismatch = np.isnan(a) != np.isnan(b)
    inf_mismatch = (np.isinf(a) | np.isinf(b)) & ~(np.isnan(a) | np.isnan(b)) & (a != b)
    mismatch = nan_mismatch | inf_mismatch
    return mismatch if mismatch.any() else None


def failed_check(name: str, kind: str, detail: str) -> Check:
    """A check that could not compare anything because one side failed to run."""
    inf = float("inf")
    return Check(name, kind, False, inf, inf, inf, 0.0, 0.0, inf, inf, detail=detail)


def _failed(
    name: str,
    kind: str,
    tolerance: Tolerance,
    detail: str,
    worst: tuple[tuple[int, ...], float, float] | None = None,
) -> Check:
    inf = float("inf")
    index, expected, actual = worst if worst else (None, None, None)
    return Check(
        name, kind, False, inf, inf, inf, tolerance.atol, tolerance.rtol, inf, inf,
        index, expected, actual, detail,
    )  # fmt: skip
