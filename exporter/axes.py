"""Naming a graph's axes from what the Keras model really does with them.

Axis 0 is ``batch``. Axis 1 of an input with a dynamic length is its time
axis: ``time`` when every such input must share one length (or there is
one), else ``<input>_time`` for each input after the first, so that an
encoder and a decoder input may differ in length. Output axes are named from
one probe call of the model on zeros with a distinct length per input: an
output axis whose size follows an input's length takes that input's time
name, a size Keras knows stays fixed (``RepeatVector(4)`` gives 4), anything
else is ``<tensor>_dim<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.exporter.keras_graph import input_names, model_inputs, model_outputs

TIME = "time"
BATCH = "batch"
PROBE_BATCH = 2
# Distinct probe lengths, one per input, unlike any small fixed size.
PROBE_LENGTHS = (5, 7, 11, 13, 17, 19, 23, 29)

Dims = tuple[int | str, ...]


@dataclass(frozen=True)
class AxisNames:
    """Each tensor's dims: an int for a fixed size, a name for a dynamic axis."""

    inputs: dict[str, Dims]
    outputs: dict[str, Dims]


def axis_names(model: Any, output_names: Sequence[str]) -> AxisNames:
    """Name the axes of ``model``'s inputs and outputs.

    Args:
        model: a functional Keras model.
        output_names: the names its outputs get in the graph, in order.
    """
    names = input_names(model)
    shapes = {name: tuple(t.shape) for name, t in zip(names, model_inputs(model), strict=True)}
    timed = [name for name in names if len(shapes[name]) >= 2 and shapes[name][1] is None]
    lengths = {name: PROBE_LENGTHS[i % len(PROBE_LENGTHS)] for i, name in enumerate(timed)}
    probed = _probe(model, shapes, lengths) if len(timed) > 1 else None
    if probed is None:
        lengths = dict.fromkeys(timed, PROBE_LENGTHS[0])
        probed = _probe(model, shapes, lengths)
    tied = len(set(lengths.values())) <= 1
    time_name = {name: TIME if tied or i == 0 else f"{name}_time" for i, name in enumerate(timed)}
    by_length = {length: time_name[name] for name, length in reversed(lengths.items())}
    inputs = {
        name: tuple(_input_dim(name, axis, dim, time_name) for axis, dim in enumerate(shape))
        for name, shape in shapes.items()
    }
    outputs = {}
    for name, tensor in zip(output_names, model_outputs(model), strict=True):
        sizes = probed[name].shape if probed is not None else None
        outputs[name] = tuple(
            _output_dim(name, axis, dim, None if sizes is None else sizes[axis], by_length)
            for axis, dim in enumerate(tensor.shape)
        )
    return AxisNames(inputs, outputs)


def _input_dim(name: str, axis: int, dim: int | None, time_name: Mapping[str, str]) -> int | str:
    if dim is not None:
        return int(dim)
    if axis == 0:
        return BATCH
    if axis == 1 and name in time_name:
        return time_name[name]
    return f"{name}_dim{axis}"


def _output_dim(
    name: str, axis: int, dim: int | None, probed: int | None, by_length: Mapping[int, str]
) -> int | str:
    if dim is not None:
        return int(dim)
    if axis == 0:
        return BATCH
    if probed in by_length:
        return by_length[probed]
    return f"{name}_dim{axis}"


def _probe(
    model: Any, shapes: Mapping[str, tuple], lengths: Mapping[str, int]
) -> dict[str, np.ndarray] | None:
    """The model's outputs on zeros of the probe lengths, or None where it
    cannot run on them (inputs whose lengths it ties)."""
    from parity.exporter.keras_io import keras_outputs

    dtypes = {name: tensor.dtype for name, tensor in zip(shapes, model_inputs(model), strict=True)}
    feeds = {}
    for name, shape in shapes.items():
        dims = [PROBE_BATCH if axis == 0 else dim for axis, dim in enumerate(shape)]
        if name in lengths:
            dims[1] = lengths[name]
        dims = [1 if dim is None else dim for dim in dims]
        feeds[name] = np.zeros(dims, dtype=str(dtypes[name]))
    try:
        return keras_outputs(model, feeds)
    except Exception:  # a model that ties its inputs' lengths fails on untied ones
        return None
