"""Counting a Keras model's floating-point operations from its layers.

A benchmark's seconds say little on their own; seconds against the work done
(GFLOP/s) and against the machine's GEMM throughput say how far from the
hardware's floor a runtime is. The count is read from the layers' weights and
the shapes in the model's functional graph, with ``None`` dims replaced by the
batch (axis 0) and the time length (any other axis).

One multiply-add is two operations. What is counted:

- LSTM, GRU, SimpleRNN, per step: ``2 * batch * (in + units) * gates * units``
  for the input and recurrent products, plus ``batch * units`` times the
  cell's elementwise operations per unit (:data:`ELEMENTWISE`: bias adds,
  activations, the gate products). Every step of the time axis counts, masked
  or not: a masked step costs as much in every runtime measured here.
- Dense: ``2 * rows * in * out`` (``rows``: every leading axis, batch and time).
- Convolutions: ``2 * output elements * kernel window * input channels``.
- ``TimeDistributed`` counts its inner layer over batch x frames,
  ``Bidirectional`` both directions; nested models are counted layer by layer.
- Everything else (pooling, activations, reshapes, masking) counts 0: next to
  the products they are noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from parity.exporter.keras_graph import calls_in_order, is_functional, is_recurrent
from parity.runtime.errors import ParityError

# Elementwise operations per unit and step, besides the two products.
# LSTM: 4 bias adds, 3 sigmoids and 1 tanh for the gates, c = f*c + i*g (3),
# h = o * tanh(c) (2). GRU: 3 bias adds (6 with reset_after), z and r (2 adds,
# 2 sigmoids), the candidate (r*h, add, tanh), h = z*h + (1-z)*candidate (4).
# SimpleRNN: a bias add and the activation.
ELEMENTWISE = {"LSTMCell": 13, "GRUCell": 11, "SimpleRNNCell": 2}
GATES = {"LSTMCell": 4, "GRUCell": 3, "SimpleRNNCell": 1}
BYTES_PER_VALUE = 4  # float32

Shape = tuple[int, ...]


def count_flops(model: Any, batch: int, time: int | None = None) -> int:
    """Floating-point operations of one call of ``model`` on ``batch`` rows
    (``time`` steps where the time axis is dynamic)."""
    total = 0
    for layer, inputs, outputs in _calls(model, batch, time):
        total += layer_flops(layer, inputs, outputs, batch, time)
    return total


def layer_flops(
    layer: Any, inputs: list[Shape], outputs: list[Shape], batch: int, time: int | None
) -> int:
    """Operations of one call of ``layer`` with these concrete input and output shapes."""
    kind = type(layer).__name__
    if is_functional(layer):  # a nested model
        return count_flops(layer, batch, time)
    if kind == "TimeDistributed":
        fold = [_fold(shape) for shape in inputs], [_fold(shape) for shape in outputs]
        return layer_flops(layer.layer, *fold, batch * inputs[0][1], time)
    if kind == "Bidirectional":
        return sum(
            layer_flops(inner, inputs, outputs, batch, time)
            for inner in (layer.forward_layer, layer.backward_layer)
        )
    if is_recurrent(layer):
        return _recurrent_flops(layer, inputs[0])
    if kind == "Dense":
        return 2 * math.prod(inputs[0][:-1]) * math.prod(layer.kernel.shape)
    if kind.startswith("Conv") and hasattr(layer, "kernel"):
        window = math.prod(layer.kernel.shape[:-1])  # kernel size x input channels / groups
        return 2 * math.prod(outputs[0]) * window
    return 0


def recurrent_gemms(model: Any, batch: int) -> list[tuple[int, int, int]]:
    """The gate product of every recurrent layer, as GEMM sizes
    ``(batch, in + units, gates * units)``: the sizes the GEMM floor is
    measured at, beside a large square one."""
    sizes = []
    for layer in _recurrent_layers(model):
        cell = layer.cell
        gates = _gates(cell)
        inputs = int(cell.kernel.shape[0])
        sizes.append((batch, inputs + int(cell.units), gates * int(cell.units)))
    return sizes


def activation_bytes(model: Any, time: int | None = None) -> int:
    """Bytes of every layer output of one row (float32): a rough bound of the
    memory a batch row takes, to keep a large batch within the machine's memory."""
    total = 0
    for _, _, outputs in _calls(model, 1, time):
        total += sum(math.prod(shape) for shape in outputs)
    return total * BYTES_PER_VALUE


def _recurrent_flops(layer: Any, sequence: Shape) -> int:
    cell = layer.cell
    name = type(cell).__name__
    if name not in GATES:
        raise ParityError(f"layer {layer.name!r}: cannot count operations of a {name}")
    batch, steps = sequence[0], sequence[1]
    units = int(cell.units)
    inputs = int(cell.kernel.shape[0])
    elementwise = ELEMENTWISE[name] + (3 if getattr(cell, "reset_after", False) else 0)
    per_step = 2 * batch * (inputs + units) * GATES[name] * units + batch * units * elementwise
    return steps * per_step


def _gates(cell: Any) -> int:
    name = type(cell).__name__
    if name not in GATES:
        raise ParityError(f"cell {cell.name!r}: cannot count operations of a {name}")
    return GATES[name]


def _recurrent_layers(model: Any) -> Iterator[Any]:
    for layer, _, _ in _calls(model, 1, 1):
        kind = type(layer).__name__
        if kind == "Bidirectional":
            yield layer.forward_layer
            yield layer.backward_layer
        elif is_functional(layer):
            yield from _recurrent_layers(layer)
        elif is_recurrent(layer):
            yield layer


def _calls(model: Any, batch: int, time: int | None) -> Iterator[tuple[Any, list, list]]:
    """Every layer call of a functional model (its inputs too), with concrete shapes."""
    if not is_functional(model):
        raise ParityError(
            f"model {getattr(model, 'name', model)!r}: operations are counted on functional "
            "models only"
        )
    for call in calls_in_order(model):
        inputs = [_concrete(t.shape, batch, time) for t in call.inputs]
        outputs = [_concrete(t.shape, batch, time) for t in call.outputs]
        yield call.layer, inputs, outputs


def _concrete(shape: Any, batch: int, time: int | None) -> Shape:
    dims = []
    for axis, dim in enumerate(shape):
        if dim is None:
            if axis > 0 and time is None:
                raise ParityError(f"shape {tuple(shape)} has a dynamic time axis: give a time")
            dim = batch if axis == 0 else time
        dims.append(int(dim))
    return tuple(dims)


def _fold(shape: Shape) -> Shape:
    """Batch and frames as one axis, as ``TimeDistributed`` runs its layer."""
    return (shape[0] * shape[1], *shape[2:])
