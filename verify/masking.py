"""Masked models: the same rows padded other ways, and what padding changes.

Keras skips a time step whose features all equal the mask value, so padding
should not change what a masked model computes. Verification runs both
runtimes on the same rows padded other ways (:func:`padding_variants`: a row
alone at its true length, padded longer, pre-padded) and holds them to each
other there: that is part of the gate. Whether padding changes the output in
each runtime alone is a property of the model (a branch that reads the raw,
padded input sees the padding), reported as a finding. This module also says
which convention each runtime follows at padded steps of a
``return_sequences`` output (Keras 3 repeats the last valid output; ONNX's
fused LSTM writes zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec


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


@dataclass(frozen=True)
class PaddingVariant:
    """The rows of a padded batch padded another way: ``rows`` are the batch
    rows it holds, in order, and ``starts`` where each one's valid steps
    begin in it (0 for post-padding)."""

    label: str
    inputs: dict[str, np.ndarray]
    rows: tuple[int, ...]
    starts: tuple[int, ...]


def padding_variants(
    batch: MaskedBatch,
    graph: GraphSpec,
    mask: MaskSpec,
    *,
    dynamic_time: bool,
    pre_padding: bool,
) -> list[PaddingVariant]:
    """The same rows, padded differently: each row alone (unpadded where the
    time axis is dynamic), the batch padded 7 steps longer (dynamic time),
    and the batch pre-padded (where the graph takes pre-padding). A row of
    length 0 is left out of the rows run alone. Every input that shares the
    masked input's time axis is cut, padded and shifted with it (its padded
    steps set to 0), so that the inputs keep one length.

    Args:
        batch: the post-padded batch and each row's valid length.
        graph: the graph's signature, from the manifest.
        mask: the masked input and its mask value.
        dynamic_time: the time axis is dynamic.
        pre_padding: the graph takes pre-padded inputs.
    """
    time = batch.inputs[mask.input].shape[1]
    tied = tied_inputs(graph, mask)
    variants = []
    for row, length in enumerate(batch.lengths):
        if length == 0:
            continue
        steps = int(length) if dynamic_time else time
        alone = {
            name: value[row : row + 1, :steps] if name in tied else value[row : row + 1]
            for name, value in batch.inputs.items()
        }
        label = f"row {row} alone{' unpadded' if dynamic_time else ''} (length {length})"
        variants.append(PaddingVariant(label, alone, (row,), (0,)))
    rows = tuple(range(len(batch.lengths)))
    if dynamic_time:
        longer = _repadded(batch, mask, tied, time + 7, "post")
        variants.append(
            PaddingVariant(f"padded to {time + 7} steps", longer, rows, (0,) * len(rows))
        )
    if pre_padding:
        pre = _repadded(batch, mask, tied, time, "pre")
        starts = tuple(int(time - n) for n in batch.lengths)
        variants.append(PaddingVariant("pre-padded", pre, rows, starts))
    return variants


def tied_inputs(graph: GraphSpec, mask: MaskSpec) -> set[str]:
    """The inputs that share the masked input's time axis, the masked input too."""
    time_dim = graph.input(mask.input).shape[1]
    return {spec.name for spec in graph.inputs if spec.rank >= 2 and spec.shape[1] == time_dim}


def _repadded(
    batch: MaskedBatch, mask: MaskSpec, tied: set[str], time: int, padding: str
) -> dict[str, np.ndarray]:
    """The batch's inputs with the valid steps of every tied input padded to
    ``time`` steps, after the valid steps ("post") or before them ("pre")."""
    inputs = dict(batch.inputs)
    for name in tied:
        source = batch.inputs[name]
        value = mask.value if name == mask.input else 0
        padded = np.full((source.shape[0], time, *source.shape[2:]), value, dtype=source.dtype)
        for row, length in enumerate(batch.lengths):
            if padding == "post":
                padded[row, :length] = source[row, :length]
            elif length:
                padded[row, time - length :] = source[row, :length]
        inputs[name] = padded
    return inputs


def valid_steps(
    outputs: Mapping[str, np.ndarray],
    name: str,
    variant: PaddingVariant,
    lengths: np.ndarray,
    sequences: set[str],
    *,
    in_batch: bool = False,
) -> np.ndarray:
    """The parts of ``variant``'s rows of output ``name`` that padding must
    not change, flattened: each row's valid steps of an output over time,
    every other output whole.

    Args:
        outputs: a runtime's outputs on ``variant``'s inputs, or (with
            ``in_batch``) on the post-padded batch the variant comes from.
        name: the output.
        variant: the variant whose rows are wanted.
        lengths: each batch row's number of valid steps.
        sequences: the outputs that carry the time axis (:func:`time_axis_outputs`).
        in_batch: ``outputs`` are the batch's: the rows are read at their
            place in the batch, their valid steps first.
    """
    value = outputs[name]
    parts = []
    for index, (row, start) in enumerate(zip(variant.rows, variant.starts, strict=True)):
        part = value[row if in_batch else index]
        if name in sequences:
            first = 0 if in_batch else start
            part = part[first : first + int(lengths[row])]
        parts.append(part.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, value.dtype)


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
