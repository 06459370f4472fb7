"""A stream's Keras graph: the model with every recurrent layer's states as
inputs and outputs, over a chunk of any length and any batch.

:func:`stream_graph` calls the model's graph again (``keras_graph.replayed``)
from inputs of a dynamic batch and time axis, every layer but the recurrent
ones being the model's own layer object, called again (shared weights), and
each recurrent layer being called as ``recurrent`` says, from a state input
of its own per state. :func:`stateless_twin` calls the layer's own cell,
``keras.layers.RNN(layer.cell, return_state=True)`` from those states, with
the mask Keras passes the layer: the stateless twin, which computes what the
model computes when its states hold those values, and what the stream graph
is converted from. The model itself is never called, so exporting a stateful
model leaves its states as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parity.exporter.keras_graph import input_names, model_inputs, replayed
from parity.exporter.stream_plan import NotStreamable, StreamPlan, state_layout
from parity.runtime.bundle_format.streaming import StreamOutput, StreamState

# How a recurrent layer is called in a stream graph: given the layer, its input
# sequence, its state inputs and the mask Keras passes it (or None), returns
# its output (the sequence, or the last output) and its new states.
RecurrentCall = Callable[[Any, Any, list[Any], Any], tuple[Any, list[Any]]]


@dataclass(frozen=True)
class StreamModel:
    """A stream's Keras graph: inputs ``[*inputs, *(s.input for s in states)]``,
    outputs ``[*(o.name for o in outputs), *(s.output for s in states)]``."""

    model: Any  # keras.Model
    states: tuple[StreamState, ...]
    inputs: tuple[str, ...]
    outputs: tuple[StreamOutput, ...]


def stream_graph(model: Any, plan: StreamPlan, recurrent: RecurrentCall) -> StreamModel:
    """``model`` with each recurrent layer called by ``recurrent`` from state
    inputs, its new states as outputs named ``state.<layer>.<kind>.next``.

    Args:
        model: the functional model ``plan`` was made for.
        plan: :func:`parity.exporter.stream_plan.plan_stream`'s answer.
        recurrent: how each recurrent layer is called (:data:`RecurrentCall`).

    Raises:
        NotStreamable: a layer is named like a state input or output.
    """
    import keras

    inputs = [
        keras.Input(shape=(None, *tensor.shape[2:]), dtype=tensor.dtype, name=name)
        for name, tensor in zip(input_names(model), model_inputs(model), strict=True)
    ]
    taken = {layer.name for layer in model.layers}
    recurrent_layers = {id(layer) for layer in plan.recurrent}
    states: list[StreamState] = []
    state_inputs, state_outputs = [], []

    def call(record: Any, args: tuple, kwargs: dict) -> Any:
        layer = record.layer
        if id(layer) not in recurrent_layers:
            return layer(*args, **kwargs)
        layout = state_layout(layer)
        for state in layout:
            clash = {state.input, state.output} & taken
            if clash:
                raise NotStreamable(f"a layer is named {clash.pop()!r}, the name of a state")
        given = [keras.Input(shape=(s.size,), dtype="float32", name=s.input) for s in layout]
        output, new = recurrent(layer, args[0], given, kwargs.get("mask"))
        states.extend(layout)
        state_inputs.extend(given)
        for state, value in zip(layout, new, strict=True):
            state_outputs.append(keras.layers.Identity(name=state.output)(value))
        returned = new if layer.return_state else []
        return [output, *returned]

    outputs = replayed(model, inputs, call)
    graph = keras.Model(
        [*inputs, *state_inputs], [*outputs, *state_outputs], name=f"{model.name}_stream"
    )
    return StreamModel(
        model=graph,
        states=tuple(states),
        inputs=tuple(input_names(model)),
        outputs=plan.outputs,
    )


def stateless_twin(model: Any, plan: StreamPlan) -> StreamModel:
    """The stream graph in Keras: each recurrent layer's cell run by
    ``keras.layers.RNN`` from the state inputs (see the module docstring)."""
    return stream_graph(model, plan, _cell_from_states)


def _cell_from_states(layer: Any, sequence: Any, states: list[Any], mask: Any) -> tuple:
    import keras

    twin = keras.layers.RNN(
        layer.cell,
        return_sequences=layer.return_sequences,
        return_state=True,
        zero_output_for_mask=layer.zero_output_for_mask,
        name=layer.name,
    )
    output, *new = twin(sequence, initial_state=states, mask=mask)
    return output, new
