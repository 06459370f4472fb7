"""Checks for masked models: padding must not change what a model computes.

Keras skips a time step whose features all equal the mask value. These checks
hold each runtime to that promise on its own (a row run alone at its true
length, padding to a longer maximum, pre- instead of post-padding), and say
which convention each runtime follows at padded steps of a ``return_sequences``
output (Keras 3 repeats the last valid output; ONNX's fused LSTM writes zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec
from parity.verify.compare import Check, compare_arrays, compare_outputs
from parity.verify.runners import Runner
from parity.verify.tolerance import TolerancePolicy


@dataclass(frozen=True)
class MaskedBatch:
    """A padded batch and each row's number of valid steps."""

    inputs: dict[str, np.ndarray]
    lengths: np.ndarray


def time_axis_outputs(graph: GraphSpec, mask: MaskSpec) -> set[str]:
    """Outputs that carry the masked input's time axis (``return_sequences``).

    Args:
        graph: the graph's signature, from the manifest.
        mask: the masked input.
    """
    time_dim = graph.input(mask.input).shape[1]
    return {spec.name for spec in graph.outputs if spec.rank >= 3 and spec.shape[1] == time_dim}


def valid_part(name: str, value: np.ndarray, length: int, sequences: set[str]) -> np.ndarray:
    """The part of one row's output that padding must not change.

    Args:
        name: the output's name.
        value: the output for one row (no batch axis).
        length: the row's number of valid steps.
        sequences: the outputs that carry the time axis (:func:`time_axis_outputs`):
            only their first ``length`` steps count; other outputs count whole.
    """
    return value[:length] if name in sequences else value


def repad(batch: MaskedBatch, mask: MaskSpec, time: int, padding: str) -> MaskedBatch:
    """The same rows padded again, with the same valid steps.

    Args:
        batch: the padded batch and each row's valid length.
        mask: the masked input and its mask value.
        time: the new number of time steps (at least the longest row).
        padding: "post" (valid steps first) or "pre" (valid steps last).
    """
    source = batch.inputs[mask.input]
    shape = (source.shape[0], time, *source.shape[2:])
    padded = np.full(shape, mask.value, dtype=source.dtype)
    for row, length in enumerate(batch.lengths):
        valid = source[row, :length]
        if padding == "post":
            padded[row, :length] = valid
        elif length:
            padded[row, time - length :] = valid
    return MaskedBatch({**batch.inputs, mask.input: padded}, batch.lengths)


def check_padding_invariance(
    runner: Runner,
    batch: MaskedBatch,
    graph: GraphSpec,
    mask: MaskSpec,
    policy: TolerancePolicy,
    *,
    dynamic_time: bool,
    pre_padding: bool,
) -> list[Check]:
    """Padding invariance in one runtime, held against its own outputs on
    ``batch``: each row alone, the batch padded longer, the batch pre-padded.

    Args:
        runner: the runtime under test; its name begins each check's name.
        batch: the padded batch and each row's valid length.
        graph: the graph's signature, from the manifest.
        mask: the masked input and its mask value.
        policy: the tolerances.
        dynamic_time: the time axis is dynamic: a row alone is run unpadded,
            and the batch is also padded 7 steps longer.
        pre_padding: also check the batch pre-padded (a fused graph refuses it).
    """
    sequences = time_axis_outputs(graph, mask)
    names = [spec.name for spec in graph.outputs]
    reference = runner.run(batch.inputs)
    checks: list[Check] = []

    def compare(label: str, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray]):
        checks.extend(
            compare_outputs(
                expected,
                actual,
                names,
                policy,
                kind="padding",
                check_name=lambda output: f"{runner.name}: {output} {label}",
            )
        )

    def valid_rows(outputs: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        """Every row's valid part, flattened into one array."""
        return _stack([valid_part(name, outputs[name][r], n, sequences)
                       for r, n in enumerate(batch.lengths)])  # fmt: skip

    time = batch.inputs[mask.input].shape[1]
    for row, length in enumerate(batch.lengths):
        if length == 0:
            continue
        steps = int(length) if dynamic_time else time
        alone = {key: value[row : row + 1, :steps] if key == mask.input else value[row : row + 1]
                 for key, value in batch.inputs.items()}  # fmt: skip
        outputs = runner.run(alone)
        compare(
            f"row {row} alone{' unpadded' if dynamic_time else ''} (length {length})",
            {name: valid_part(name, reference[name][row], length, sequences) for name in names},
            {name: valid_part(name, outputs[name][0], length, sequences) for name in names},
        )
    if dynamic_time:
        outputs = runner.run(repad(batch, mask, time + 7, "post").inputs)
        compare(
            f"padded to {time + 7} steps",
            {name: valid_rows(reference, name) for name in names},
            {name: valid_rows(outputs, name) for name in names},
        )
    if pre_padding:
        outputs = runner.run(repad(batch, mask, time, "pre").inputs)
        expected, actual = {}, {}
        for name in names:
            if name in sequences:
                expected[name] = _stack([reference[name][r, :n]
                                         for r, n in enumerate(batch.lengths)])  # fmt: skip
                actual[name] = _stack([outputs[name][r, time - n :]
                                       for r, n in enumerate(batch.lengths)])  # fmt: skip
            else:
                expected[name], actual[name] = reference[name], outputs[name]
        checks += compare_outputs(
            expected,
            actual,
            names,
            policy,
            kind="padding",
            check_name=lambda output: (
                f"{runner.name}: {output} pre-padded"
                + (" (valid steps)" if output in sequences else "")
            ),
        )
    return checks


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([part.reshape(-1) for part in parts])


def last_valid_equals_state(
    outputs: Mapping[str, np.ndarray],
    batch: MaskedBatch,
    sequences: set[str],
    mask: MaskSpec,
    policy: TolerancePolicy,
) -> list[Check]:
    """The second seed's claim, on ONNX Runtime's outputs: a recurrent layer
    that returns its sequence and its state ends with h equal to its output at
    each row's last valid step (exporter names the state ``<layer>_h``).

    Args:
        outputs: ONNX Runtime's outputs on ``batch``, by name.
        batch: the padded batch and each row's valid length.
        sequences: the outputs that carry the time axis (:func:`time_axis_outputs`).
        mask: the masked input and the padding the model was trained on.
        policy: the tolerances (the state's own tolerance applies).
    """
    checks = []
    time = batch.inputs[mask.input].shape[1]
    for name in sorted(sequences):
        state = outputs.get(f"{name}_h")
        if state is None:
            continue
        rows = [r for r, n in enumerate(batch.lengths) if n > 0]
        last = [(n - 1 if mask.padding == "post" else time - 1) for n in batch.lengths if n > 0]
        checks.append(
            compare_arrays(
                f"onnxruntime: {name} at the last valid step equals {name}_h",
                "padding",
                state[rows],
                outputs[name][rows, last],
                policy.for_output(f"{name}_h"),
            )
        )
    return checks


def padded_step_convention(value: np.ndarray, lengths: np.ndarray, atol: float = 1e-6) -> str:
    """Which convention a ``return_sequences`` output follows at padded steps:
    "repeat last valid", "zeros", "none" (neither) or "n/a" (no padded step).

    Args:
        value: the output, ``(batch, time, ...)``, on post-padded inputs.
        lengths: each row's number of valid steps.
        atol: how close a padded step must be to the convention's value.
    """
    repeat = zeros = True
    seen = False
    for row, length in enumerate(lengths):
        if length == 0 or length >= value.shape[1]:
            continue
        seen = True
        padded = value[row, length:]
        repeat &= bool(np.allclose(padded, value[row, length - 1], atol=atol, rtol=0))
        zeros &= bool(np.allclose(padded, 0.0, atol=atol, rtol=0))
    if not seen:
        return "n/a"
    return "repeat last valid" if repeat else "zeros" if zeros else "none"


def steps_equal_to_mask(inputs: Mapping[str, np.ndarray], mask: MaskSpec) -> list[str]:
    """Warnings for real time steps that equal the mask value and so would be
    skipped silently: an all-mask step followed, later in the row, by a real one.

    Args:
        inputs: the caller's input arrays, by name.
        mask: the masked input and its mask value.
    """
    value = inputs.get(mask.input)
    if value is None or value.ndim < 3:
        return []
    is_mask = np.all(value == mask.value, axis=tuple(range(2, value.ndim)))
    warnings = []
    for row in range(is_mask.shape[0]):
        real = np.flatnonzero(~is_mask[row])
        if real.size == 0:
            continue
        inner = np.flatnonzero(is_mask[row, real[0] : real[-1] + 1])
        if inner.size:
            steps = ", ".join(str(int(real[0] + s)) for s in inner[:5])
            warnings.append(
                f"input {mask.input!r} row {row}: step(s) {steps} equal the mask value "
                f"{mask.value} between real steps; the model skips them silently"
            )
    return warnings
