"""Comparing whole generations, where error may grow with the step.

A generation has shape (batch, steps, ...). Under the noise rule step ``t`` is
held to the noise floor of TensorFlow's float32 generation against its float64
one, at its largest over steps ``0..t`` (rounding differences compound, so the
floor never falls); under the allclose rule to the base tolerance scaled by
``1 + growth * t`` (see :mod:`verify.tolerance`). The report keeps the error of
every step, the first step that left its tolerance and, for token decoders, the
share of identical tokens and the first step where a sequence diverges.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.verify.agreement import first_divergence
from parity.verify.compare import Check, compare_arrays, noise_of
from parity.verify.report import StepErrors
from parity.verify.tolerance import TolerancePolicy


def step_floors(expected: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The noise floor of each step: float32's largest error against float64
    at any step up to it (at least one float32 ulp of that step's largest value).

    Args:
        expected: the float32 generation, ``(batch, steps, ...)``.
        exact: the float64 generation of the same weights and inputs.
    """
    floors = [noise_of(expected[:, t], exact[:, t], expected[:, t])[0]
              for t in range(expected.shape[1])]  # fmt: skip
    return np.maximum.accumulate(np.asarray(floors, np.float64))


def compare_generation(
    name: str,
    output: str,
    expected: np.ndarray,
    actual: np.ndarray,
    policy: TolerancePolicy,
    *,
    exact: np.ndarray | None = None,
    floors: np.ndarray | None = None,
    factor: float | None = None,
    kind: str = "generation",
) -> tuple[Check, StepErrors]:
    """Compare two generations step by step.

    Args:
        name: the check's name.
        output: the generated output's name (its tolerance overrides apply).
        expected: the reference generation (TensorFlow in float32).
        actual: the generation held to it.
        policy: the rule, the tolerances and their growth over the steps.
        exact: the reference in float64; given (and the output left to the
            noise rule), ``actual``'s error against it is held to ``factor``
            times each step's noise floor.
        floors: each step's noise floor, in place of :func:`step_floors` of
            ``expected`` and ``exact`` (to hold two ONNX Runtime generations
            to TensorFlow's noise).
        factor: the noise rule's largest ratio; the policy's when None.
        kind: the check's kind in the report.
    """
    base = policy.for_output(output)
    growth = policy.growth_rate
    factor = policy.noise_factor if factor is None else factor
    noise = exact is not None and (floors is not None or policy.uses_noise(output))
    whole = compare_arrays(name, kind, expected, actual, base, output=output)
    if whole.detail or expected.ndim < 2:
        first = None if whole.passed else 0
        return whole, StepErrors(name, base.atol, base.rtol, (), first, growth)
    steps = expected.shape[1]
    if noise:
        floors = step_floors(expected, exact) if floors is None else floors
        per_step = [
            compare_arrays(f"{name} step {t}", kind, expected[:, t], actual[:, t], base,
                           exact=exact[:, t], factor=factor, noise_floor=float(floors[t]))
            for t in range(steps)
        ]  # fmt: skip
    else:
        per_step = [
            compare_arrays(f"{name} step {t}", kind, expected[:, t], actual[:, t],
                           base.scaled(1.0 + growth * t))
            for t in range(steps)
        ]  # fmt: skip
    errors = StepErrors.of_checks(
        name,
        per_step,
        floors,
        noise,
        atol=per_step[0].atol if noise else base.atol,
        rtol=per_step[0].rtol if noise else base.rtol,
        growth=0.0 if noise else growth,
    )
    first = errors.first_failing_step
    worst = max(per_step, key=lambda check: check.ratio or 0.0)
    summary = dict(
        rule=worst.rule,
        noise_floor=worst.noise_floor,
        error=worst.error,
        ratio=worst.ratio,
        limit=worst.limit,
        atol=worst.atol if noise else whole.atol,
        rtol=worst.rtol if noise else whole.rtol,
        first_divergence=first_divergence(expected, actual),
        # each step judged by its own tolerance
        used_histogram=_summed([check.used_histogram for check in per_step]),
        exact_elements=sum(check.exact_elements for check in per_step),
    )
    if first is None:
        return dataclasses.replace(
            whole, passed=True, needed_atol=0.0, needed_rtol=0.0, **summary
        ), errors
    failing = per_step[first]
    if noise:
        how = (
            f"error against float64 {failing.error:.2e} is {failing.ratio:.1f} times the "
            f"float32 noise floor {failing.noise_floor:.2e} there (allowed: {factor:g} times)"
        )
    else:
        how = f"atol {failing.atol:.2e} there"
    detail = (
        f"leaves tolerance at step {first} of {steps} ({how}): "
        f"element {(failing.worst_index[0], first, *failing.worst_index[1:])} expected "
        f"{failing.worst_expected!r}, got {failing.worst_actual!r}; max abs error grows from "
        f"{per_step[0].max_abs:.2e} at step 0 to {per_step[-1].max_abs:.2e} at step {steps - 1}"
    )
    return dataclasses.replace(whole, passed=False, detail=detail, **summary), errors


def _summed(histograms: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The histograms of every step added up (a failed step has none)."""
    counted = [histogram for histogram in histograms if histogram]
    return tuple(int(count) for count in np.sum(counted, axis=0)) if counted else ()
