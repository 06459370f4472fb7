"""Judging a stream's runs: ONNX Runtime against TensorFlow chunk by chunk,
and one run against another in the same runtime.

A run is what :func:`parity.runtime.stream.run_schedule` returns: every
output over the whole sequence (per-step outputs joined over time, per-chunk
ones stacked) and the final states. Every comparison here is one of
:mod:`parity.verify.compare`; what is particular to a stream is the noise
floor, taken from the stateless twin in float32 against its float64 rebuild
fed the same chunks, never from the TensorFlow side under judgement, so that
a twin that strayed from a stateful model could not widen it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parity.verify.compare import Check, compare_arrays, noise_of
from parity.verify.report import StepErrors, describe_failure
from parity.verify.stored import PAIR_FALLBACK
from parity.verify.tolerance import PAIR_FACTOR, TolerancePolicy

# The kinds of the checks: a runtime against the other, a runtime against itself.
KIND = "stream"
INVARIANCE = "stream-invariance"
# The name the final states are judged under (their tolerance overrides apply).
STATES = "states"

Run = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # outputs, final states
Rounding = tuple[Run, Run]  # the stateless twin's run in float32 and in float64


def compare_run(
    name: str,
    chunks: Sequence[int],
    expected: Run,
    actual: Run,
    rounding: Rounding | None,
    policy: TolerancePolicy,
    per: Mapping[str, str],
) -> tuple[list[Check], list[StepErrors]]:
    """Every output of one schedule, chunk by chunk, and the final states.

    Args:
        name: the schedule's name, for the checks' names.
        chunks: the chunks both runs were fed.
        expected: TensorFlow's run (float32).
        actual: ONNX Runtime's run.
        rounding: the stateless twin's runs in float32 and float64, whose
            difference is the noise floor; None where float64 did not run.
        policy: the rule and tolerances.
        per: each output's kind, "step" or "chunk".

    Returns:
        One check per output (the worst chunk, failing at the first chunk
        that fails) and one for the states; the error per chunk of each output.
    """
    checks, curves = [], []
    for output in expected[0]:
        label = f"stream {name}/{output}"
        cut = [pieces(run[0][output], per[output], chunks) for run in (expected, actual)]
        floors = None
        if rounding is not None:
            single, precise = (pieces(run[0][output], per[output], chunks) for run in rounding)
            floors = np.maximum.accumulate(
                [noise_of(a, b, a)[0] for a, b in zip(single, precise, strict=True)]
            )
        check, curve = per_chunk(label, output, *cut, floors, policy)
        checks.append(check)
        curves.append(curve)
    want, got = (final_states(run) for run in (expected, actual))
    floor = None
    if rounding is not None:
        single, precise = map(final_states, rounding)
        floor = noise_of(single, precise, single)[0]
    checks.append(noise_check(f"stream {name}/final states", STATES, want, got, floor, policy))
    return checks, curves


def per_chunk(
    label: str,
    output: str,
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    floors: Sequence[float] | None,
    policy: TolerancePolicy,
) -> tuple[Check, StepErrors]:
    """One output of a run, each chunk judged on its own.

    Args:
        label: the check's name.
        output: the output's name (its tolerance overrides apply).
        expected: TensorFlow's output, one array per chunk.
        actual: ONNX Runtime's, likewise.
        floors: the noise floor of each chunk (the largest float32 noise of
            the chunks up to it: an error carried in the states compounds);
            None: the allclose rule.
        policy: the rule and tolerances.

    Returns:
        The worst chunk's check (the first failing one's where one fails),
        named ``label``, and the error of every chunk.
    """
    noise = floors is not None and policy.uses_noise(output)
    checks = [
        noise_check(f"{label} chunk {index}", output, want, got,
                     floors[index] if noise else None, policy)
        for index, (want, got) in enumerate(zip(expected, actual, strict=True))
    ]  # fmt: skip
    first = next((i for i, check in enumerate(checks) if not check.passed), None)
    worst = checks[first] if first is not None else max(checks, key=lambda c: c.ratio or 0.0)
    detail = ""
    if first is not None:
        detail = f"chunk {first} of {len(checks)}: {describe_failure(worst)}"
    histograms = [check.used_histogram for check in checks if check.used_histogram]
    summary = dataclasses.replace(
        worst,
        name=label,
        detail=detail,
        max_abs=max(check.max_abs for check in checks),
        # each chunk judged by its own floor
        used_histogram=tuple(map(sum, zip(*histograms, strict=True))),
        exact_elements=sum(check.exact_elements for check in checks),
    )
    curve = StepErrors.of_checks(
        f"{label} per chunk", checks, floors, noise, atol=worst.atol, rtol=worst.rtol
    )
    return summary, curve


def pieces(value: np.ndarray, per: str, chunks: Sequence[int]) -> list[np.ndarray]:
    """One array per chunk: a per-chunk output is stacked over chunks, a
    per-step one is cut along its time axis."""
    if per == "chunk":
        return list(value)
    ends = np.cumsum(chunks)
    return [value[:, end - length : end] for end, length in zip(ends, chunks, strict=True)]


def noise_floors(rounding: Rounding | None) -> dict[str, float] | None:
    """The float32 noise floor of each output and of the states over a whole
    run; None where float64 did not run."""
    if rounding is None:
        return None
    single, precise = rounding
    floors = {name: noise_of(v, precise[0][name], v)[0] for name, v in single[0].items()}
    floors[STATES] = noise_of(final_states(single), final_states(precise), final_states(single))[0]
    return floors


def final_states(run: Run) -> np.ndarray:
    """Every final state of a run side by side, (batch, all sizes)."""
    return np.concatenate(list(run[1].values()), axis=1)


def noise_check(
    name: str,
    output: str,
    expected: np.ndarray,
    actual: np.ndarray,
    floor: float | None,
    policy: TolerancePolicy,
) -> Check:
    """``actual`` held to TensorFlow's ``expected`` within the policy's noise
    factor times ``floor`` (the twin's float32 noise, which Keras' stateful
    model itself cannot inflate), or by the allclose rule when ``floor`` is
    None or the output's tolerance is fixed."""
    base = policy.for_output(output)
    if floor is None or not policy.uses_noise(output):
        return compare_arrays(name, KIND, expected, actual, base, output=output)
    check = compare_arrays(
        name, KIND, expected, actual, base, exact=np.asarray(expected, np.float64),
        factor=policy.noise_factor, noise_floor=float(floor), output=output,
    )  # fmt: skip
    if check.passed or check.detail:
        return check
    return dataclasses.replace(
        check,
        detail=f"differs from TensorFlow's by {check.error:.2e}, {check.ratio:.2g} times the "
        f"float32 noise floor {check.noise_floor:.2e} (allowed: {check.limit:g} times); worst "
        f"element {check.worst_index}: expected {check.worst_expected!r}, got "
        f"{check.worst_actual!r}",
    )


def pair_check(
    label: str, output: str, reference: np.ndarray, other: np.ndarray, floors: Any
) -> Check:
    """``other`` held to ``reference`` within the float32 noise floor once
    (:data:`PAIR_FACTOR`), or :data:`PAIR_FALLBACK` without a floor."""
    if floors is None:
        return compare_arrays(label, INVARIANCE, reference, other, PAIR_FALLBACK, output=output)
    return compare_arrays(
        label, INVARIANCE, reference, other, PAIR_FALLBACK, exact=reference.astype(np.float64),
        factor=PAIR_FACTOR, noise_floor=floors[output], output=output,
    )  # fmt: skip
