"""Comparing whole generations, where error may grow with the step.

A generation has shape (batch, steps, ...). Step ``t`` is held to the base
tolerance scaled by ``1 + growth * t`` (see :mod:`verify.tolerance`); the
report keeps the error of every step and the first step that left tolerance.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.verify.compare import Check, compare_arrays
from parity.verify.report import StepErrors
from parity.verify.tolerance import TolerancePolicy


def compare_generation(
    name: str,
    output: str,
    expected: np.ndarray,
    actual: np.ndarray,
    policy: TolerancePolicy,
) -> tuple[Check, StepErrors]:
    """Compare two generations step by step under the growing tolerance."""
    base = policy.for_output(output)
    whole = compare_arrays(name, "generation", expected, actual, base)
    if whole.detail or expected.ndim < 2:
        first = None if whole.passed else 0
        return whole, StepErrors(name, base.atol, base.rtol, (), first, policy.growth)
    steps = expected.shape[1]
    per_step = [
        compare_arrays(
            f"{name} step {t}",
            "generation",
            expected[:, t],
            actual[:, t],
            base.scaled(1.0 + policy.growth * t),
        )
        for t in range(steps)
    ]
    first = next((t for t, check in enumerate(per_step) if not check.passed), None)
    errors = StepErrors(
        name=name,
        atol=base.atol,
        rtol=base.rtol,
        max_abs_per_step=tuple(check.max_abs for check in per_step),
        first_failing_step=first,
        growth=policy.growth,
    )
    if first is None:
        return dataclasses.replace(whole, passed=True, needed_atol=0.0, needed_rtol=0.0), errors
    failing = per_step[first]
    detail = (
        f"leaves tolerance at step {first} of {steps} (atol {failing.atol:.2e} there): "
        f"element {(failing.worst_index[0], first, *failing.worst_index[1:])} expected "
        f"{failing.worst_expected!r}, got {failing.worst_actual!r}; max abs error grows from "
        f"{per_step[0].max_abs:.2e} at step 0 to {per_step[-1].max_abs:.2e} at step {steps - 1}"
    )
    return dataclasses.replace(whole, passed=False, detail=detail), errors
