"""A stream in one runtime alone: any chunking gives what one call gives.

For TensorFlow's side and ONNX Runtime's alike: a chunked run against one
call over the whole sequence, at valid steps and for the final states; a
per-chunk output against one call over the steps up to each chunk's end;
rows reset half way against a fresh stream fed the rest of their sequences.
Each within the float32 noise floor once (:func:`parity.verify.stream_compare.pair_check`).
Outputs at masked steps are left out and their largest difference noted:
Keras restarts its repetition of the last valid output at every call, so
they depend on the chunking in both runtimes alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from parity.runtime.bundle_format.manifest import MaskSpec
from parity.runtime.stream import run_schedule
from parity.verify.compare import Check
from parity.verify.stream_compare import STATES, Run, final_states, pair_check

# Makes a fresh stream of one runtime for the chunks it will be fed.
MakeStream = Callable[[tuple[int, ...]], Any]


def valid_steps(inputs: Mapping[str, np.ndarray], mask: MaskSpec | None) -> np.ndarray | None:
    """``(batch, steps)``: True where a step is not masked; None without a mask.

    Args:
        inputs: the whole sequences.
        mask: the bundle's mask.
    """
    if mask is None:
        return None
    value = inputs[mask.input]
    return np.any(value != mask.value, axis=tuple(range(2, value.ndim)))


def invariance(
    runtime: str,
    make: MakeStream,
    runs: Mapping[Any, Run],
    inputs: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
    floors: dict[str, float] | None,
    per: Mapping[str, str],
) -> tuple[list[Check], list[str]]:
    """In one runtime alone: each chunking against one call over the whole
    sequence, and the rows reset half way against a fresh stream.

    Args:
        runtime: "tensorflow" or "onnxruntime", for the checks' names.
        make: a fresh stream of that runtime.
        runs: its run of each schedule (:class:`parity.verify.stream.Schedule`),
            the whole sequence in one chunk first.
        inputs: the whole sequences.
        valid: ``(batch, steps)``, True where a step is not masked; None
            without a mask.
        floors: the float32 noise floor of each output and of the states
            (:func:`parity.verify.stream_compare.noise_floors`); None: the
            allclose rule.
        per: each output's kind, "step" or "chunk".

    Returns:
        The checks, and a note on the masked steps where they differ.
    """
    schedules_ = list(runs)
    whole = runs[schedules_[0]]
    checks, masked = [], 0.0
    for schedule in schedules_[1:]:
        if schedule.reset_rows:
            checks += _reset_rows(runtime, make, schedule, runs[schedule], inputs, floors, per)
            continue
        outputs, states = runs[schedule]
        label = f"{runtime}: stream {schedule.name} against one call"
        for name, value in outputs.items():
            if per[name] == "step":
                keep = slice(None) if valid is None else valid
                checks.append(pair_check(f"{label}/{name}", name, whole[0][name][keep], value[keep],
                                    floors))  # fmt: skip
                if valid is not None and (~valid).any():
                    gap = np.abs(whole[0][name][~valid].astype(np.float64) - value[~valid])
                    masked = max(masked, float(gap.max()))
            elif schedule.name == "random chunks":
                reference, got = _prefix_calls(make, schedule, name, value, inputs, valid)
                each = f"{runtime}: stream {schedule.name}, each against one call up to its end"
                checks.append(pair_check(f"{each}/{name}", name, reference, got, floors))
        checks.append(
            pair_check(f"{label}/final states", STATES, final_states(whole),
                       final_states((outputs, states)), floors)
        )  # fmt: skip
    notes = []
    if masked:
        notes.append(
            f"{runtime}: at masked steps, the chunked outputs differ from one call's by up to "
            f"{masked:.2g} (Keras restarts its repetition of the last valid output at every "
            "call, so outputs at masked steps depend on the chunking; valid steps and states "
            "do not)"
        )
    return checks, notes


def _prefix_calls(
    make: MakeStream,
    schedule: Any,
    name: str,
    chunked: np.ndarray,
    inputs: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """A per-chunk output of a chunked run, and one call over the steps up to
    each chunk's end, for the rows with a valid step in the chunk."""
    references, values = [], []
    end = 0
    for index, length in enumerate(schedule.chunks):
        end += length
        prefix = {key: value[:, :end] for key, value in inputs.items()}
        reference = run_schedule(make((end,)), prefix, (end,))[0][name][0]
        rows = slice(None) if valid is None else valid[:, end - length : end].any(axis=1)
        references.append(reference[rows])
        values.append(chunked[index][rows])
    return np.concatenate(references), np.concatenate(values)


def _reset_rows(
    runtime: str,
    make: MakeStream,
    schedule: Any,
    run: Run,
    inputs: Mapping[str, np.ndarray],
    floors: dict[str, float] | None,
    per: Mapping[str, str],
) -> list[Check]:
    """The rows reset before the middle chunk against a fresh stream fed the
    rest of their sequences in the same chunks."""
    middle = len(schedule.chunks) // 2
    cut = sum(schedule.chunks[:middle])
    rest = schedule.chunks[middle:]
    fresh = run_schedule(make(rest), {k: v[:, cut:] for k, v in inputs.items()}, rest)
    rows = list(schedule.reset_rows)
    label = f"{runtime}: stream rows reset against a fresh stream"
    checks = []
    for name, value in run[0].items():
        if per[name] == "chunk":
            mine, theirs = value[middle:, rows], fresh[0][name][:, rows]
        else:
            mine, theirs = value[rows, cut:], fresh[0][name][rows]
        checks.append(pair_check(f"{label}/{name}", name, theirs, mine, floors))
    names = list(run[1])
    stacked = [np.concatenate([r[n][rows] for n in names], axis=1) for r in (fresh[1], run[1])]
    checks.append(pair_check(f"{label}/final states", STATES, *stacked, floors))
    return checks
