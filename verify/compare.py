"""Comparing what one runner computes with what another computes.

:func:`compare_outputs` holds one runner's named outputs against another's,
output by output, under each output's tolerance; :func:`compare_arrays` is one
such comparison. A comparison never raises for a numerical disagreement: it
returns a :class:`Check` that says how far apart the arrays are and whether
they pass their rule: the noise rule where a float64 reference is given
(``|actual - exact|`` at most ``factor`` times ``|expected - exact|``, the
float32 noise floor, see :mod:`verify.tolerance`), else numpy's allclose rule
``|actual - expected| <= atol + rtol * |expected|``; both are the one
element-wise comparison of :mod:`parity.runtime.comparison`, summarised here
over the whole array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from parity.runtime.comparison import compare_elements
from parity.verify.agreement import argmax_agreement
from parity.verify.tolerance import Tolerance, TolerancePolicy


@dataclass(frozen=True)
class Check:
    """The outcome of one comparison, as the report shows it.

    ``needed_atol`` is the smallest atol that passes at this rtol, and
    ``needed_rtol`` the smallest rtol that passes at this atol (``inf`` where
    no rtol can, because the expected value is zero).

    ``rule`` is "noise" or "allclose". Under the noise rule ``noise_floor`` is
    the float32 reference's largest error against float64 (at least one
    float32 ulp of the largest value), ``error`` the compared side's largest
    error against float64, ``ratio`` their quotient and ``limit`` the largest
    ratio that passes; ``atol`` is then ``limit * noise_floor`` and ``rtol`` 0.
    Under the allclose rule ``error`` is ``max_abs``, ``ratio`` the largest
    ``|error| / (atol + rtol * |expected|)`` and ``limit`` 1. ``agreement`` is
    the share of positions whose argmax agrees (outputs that are probability
    distributions), ``first_divergence`` the first step where a generated
    token differs. ``output`` is the output compared, and ``varied`` whether
    the reference's values differ between the rows (axis 0) at all: a check
    whose reference is the same for every row proves little (None with a
    single row).

    ``used_histogram`` counts the elements by how much of its tolerance each
    used, the error the rule judges over the error it allows that element
    (over :data:`USED_EDGES`; the check passes when none is above 1): under
    the noise rule ``|actual - float64| / (limit * noise_floor)``, under the
    allclose rule ``|actual - expected| / (atol + rtol * |expected|)``.
    ``exact_elements`` are those that used none of it: no error at all."""

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
    rule: str = "allclose"
    noise_floor: float | None = None
    error: float | None = None
    ratio: float | None = None
    limit: float | None = None
    agreement: float | None = None
    first_divergence: int | None = None
    output: str = ""
    varied: bool | None = None
    used_histogram: tuple[int, ...] = ()
    exact_elements: int = 0


# One float32 ulp at 1.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
# The noise floor is never below this many FLOAT32_EPS of the largest value.
# ONNX Runtime's recurrent kernels compute tanh and sigmoid by approximations
# good to a few ulps, while TensorFlow's float32 can sit far closer to float64
# on small activations: measured on the coverage models, SimpleRNN over
# Embedding(mask_zero) reached 24 times TensorFlow's own error at about
# 1.5e-7 on outputs near 0.035 (every other configuration stayed within 3.3
# times). A weight scaled by 1.001 still moves outputs by hundreds of times this.
MIN_FLOOR_EPS = 16
# The smallest noise floor, for outputs that are zero everywhere.
TINY_FLOOR = 1e-12

# How much rows must differ, relative to the largest value, to count as varied.
VARIATION = 1e-5

# Bin edges of ``Check.error_histogram``: absolute errors from 1e-12 to 1 on a log scale
# (errors below 1e-12 fall into the first bin, above 1 into the last).
HISTOGRAM_EDGES = tuple(float(edge) for edge in np.logspace(-12, 0, 25))
# Bin edges of ``Check.used_histogram``: the share of its tolerance an element
# used, from 1e-6 to 1e4 on a log scale, 3 bins a decade, each bin holding the
# shares above its lower edge up to its upper edge, so that 1 (just passing)
# is in the bin below the limit (shares outside fall into the end bins;
# elements without error are counted apart).
USED_EDGES = tuple(10.0 ** (k / 3) for k in range(-18, 13))


def compare_outputs(
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    outputs: Iterable[str],
    policy: TolerancePolicy,
    *,
    kind: str,
    check_name: Callable[[str], str],
    exact: Mapping[str, np.ndarray] | None = None,
    factor: float | None = None,
) -> list[Check]:
    """One check per output: ``actual[output]`` against ``expected[output]``
    under the policy's rule for that output: the noise rule where ``exact``
    holds the output and the policy leaves the output to it, else allclose.

    Args:
        expected: the reference runner's outputs, by output name.
        actual: the outputs held to them, by output name.
        outputs: the output names to compare, in the order the checks are wanted.
        policy: gives each output its tolerance.
        kind: the kind of every check in the report.
        check_name: the check's name for an output's name.
        exact: the float64 reference's outputs, by output name; None where
            float64 did not run.
        factor: the noise rule's largest ratio; the policy's when None.
    """
    return [
        compare_arrays(
            check_name(output),
            kind,
            expected[output],
            actual[output],
            policy.for_output(output),
            exact=exact.get(output) if exact is not None and policy.uses_noise(output) else None,
            factor=policy.noise_factor if factor is None else factor,
            output=output,
        )
        for output in outputs
    ]


def compare_arrays(
    name: str,
    kind: str,
    expected: np.ndarray,
    actual: np.ndarray,
    tolerance: Tolerance,
    *,
    exact: np.ndarray | None = None,
    factor: float = 10.0,
    noise_floor: float | None = None,
    output: str = "",
) -> Check:
    """Compare ``actual`` with ``expected`` (the reference).

    Args:
        name: the check's name in the report.
        kind: the check's kind in the report.
        expected: the reference array (TensorFlow in float32).
        actual: the array held to it; a different shape or dtype fails the check.
        tolerance: the allclose rule's atol and rtol, where it applies.
        exact: the reference in float64: given, the noise rule applies.
        factor: the noise rule's largest ratio of ``actual``'s error against
            ``exact`` to ``expected``'s.
        noise_floor: the floor to hold ``actual``'s error to, in place of
            ``expected``'s own error against ``exact`` (a generation's floor
            grows over the steps).
        output: the name of the output compared, for the report.
    """
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
        return Check(name, kind, True, 0.0, 0.0, 0.0, tolerance.atol, tolerance.rtol, output=output)
    noise = None
    if exact is not None and expected.dtype.kind == "f":
        floor, measured = noise_of(expected, exact, actual)
        floor = floor if noise_floor is None else noise_floor
        if np.isfinite(measured):  # else judged below, as by the allclose rule
            noise = (floor, measured)
            tolerance = Tolerance(factor * floor, 0.0)
    elements = compare_elements(expected, actual, tolerance.atol, tolerance.rtol)
    if noise is not None:  # what the rule judges: the error against float64
        used = compare_elements(exact, actual).error / (factor * noise[0])
    else:
        used = elements.ratio
    a, b, error = elements.actual, elements.expected, elements.error
    if elements.one_sided.any():
        index = tuple(int(i) for i in np.argwhere(elements.one_sided)[0])
        raw_a, raw_b = actual.astype(np.float64)[index], expected.astype(np.float64)[index]
        return _failed(
            name,
            kind,
            tolerance,
            f"non-finite value on one side only at {index}: {raw_a} vs {raw_b}",
            worst=(index, float(raw_b), float(raw_a)),
        )
    magnitude = np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(error == 0, 0.0, error / magnitude)
        needed_rtol_each = np.where(
            error <= tolerance.atol, 0.0, (error - tolerance.atol) / magnitude
        )
    flat = int(np.argmax(error - elements.allowed))
    index = tuple(int(i) for i in np.unravel_index(flat, error.shape))
    norm = float(np.linalg.norm(b))
    diff_norm = float(np.linalg.norm(a - b))
    rel_l2 = diff_norm / norm if norm > 0 else (0.0 if diff_norm == 0 else float("inf"))
    if noise is not None:
        rule = dict(rule="noise", noise_floor=noise[0], error=noise[1],
                    ratio=noise[1] / noise[0], limit=factor)  # fmt: skip
        passed = noise[1] / noise[0] <= factor
    else:
        ratio = float(elements.ratio.max())
        rule = dict(rule="allclose", error=float(error.max()), ratio=ratio, limit=1.0)
        passed = elements.passed
    return Check(
        name=name,
        kind=kind,
        passed=bool(passed),
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
        agreement=argmax_agreement(expected, actual),
        output=output,
        varied=varies_between_rows(expected),
        used_histogram=used_histogram(used[used > 0]),
        exact_elements=int(np.count_nonzero(used == 0)),
        **rule,
    )


def used_histogram(shares: np.ndarray) -> tuple[int, ...]:
    """How many of ``shares`` fall in each bin of :data:`USED_EDGES`, a bin
    holding those above its lower edge up to its upper edge; shares outside
    the edges count in the end bins.

    Args:
        shares: each element's share of its tolerance used, all above 0.
    """
    bins = len(USED_EDGES) - 1
    index = np.clip(np.searchsorted(USED_EDGES, shares.ravel(), side="left") - 1, 0, bins - 1)
    return tuple(int(count) for count in np.bincount(index, minlength=bins))


def varies_between_rows(values: np.ndarray) -> bool | None:
    """Whether ``values`` differ between rows (axis 0) by more than rounding
    (:data:`VARIATION`, relative to the largest value: rows computed side by
    side can differ in their last bits); None for fewer than two rows.

    Args:
        values: a reference output, rows on axis 0.
    """
    values = np.asarray(values, np.float64)
    if values.ndim == 0 or values.shape[0] < 2 or not values.size:
        return None
    with np.errstate(invalid="ignore"):
        spread = np.nanmax(np.abs(values - values[:1]), initial=0.0)
        scale = float(np.nanmax(np.abs(values), initial=0.0))
    return bool(spread > VARIATION * scale)


def noise_of(expected: np.ndarray, exact: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """The float32 noise floor and ``actual``'s error against float64.

    The floor is the float32 reference's largest error against float64, and
    never less than :data:`MIN_FLOOR_EPS` float32 epsilons of the largest value
    (a result that float32 happens to get exactly right does not make every
    rounding a failure).

    Args:
        expected: the reference in float32.
        exact: the reference in float64.
        actual: the array held to them.
    """
    exact64 = np.asarray(exact, np.float64)
    finite = np.isfinite(exact64)
    scale = float(np.max(np.abs(exact64[finite]))) if finite.any() else 0.0
    own = np.abs(np.asarray(expected, np.float64) - exact64)
    own = float(np.max(own[finite])) if finite.any() else 0.0
    floor = max(own, MIN_FLOOR_EPS * FLOAT32_EPS * scale, TINY_FLOOR)
    return floor, float(compare_elements(exact64, actual).error.max())


def failed_check(name: str, kind: str, detail: str) -> Check:
    """A check that could not compare anything because one side failed to run.

    Args:
        name: the check's name in the report.
        kind: the check's kind in the report.
        detail: why nothing could be compared.
    """
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
