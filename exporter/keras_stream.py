"""TensorFlow's side of a stream: Keras models fed chunk by chunk.

Two references, with the runtime's :class:`~parity.runtime.stream.Stream`
interface (``feed``, ``reset``, ``states``, ``outputs``), so that
:func:`parity.runtime.stream.run_schedule` feeds either the same way:

- :class:`StatefulKeras`: a stateful Keras model itself, called once per
  chunk; its layers keep their states in their own variables. Keras 3 resets
  every row (``layer.reset_state()``) and ``keras.Model`` has no
  ``reset_states`` at all, so a reset of some rows assigns zeros to those
  rows of the variables;
- :class:`TwinStream`: a stream graph in Keras (the stateless twin,
  :func:`parity.exporter.stream_twin.stateless_twin`, or its float64 rebuild)
  called once per chunk with the states passed in and taken out as arrays:
  the reference of a stateless model exported with ``--streaming``, and the
  noise floor of any stream.

Both are eager: Keras 3's ``TimeDistributed`` traced over a dynamic time axis
is wrong, and each chunk length would be a new trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from parity.exporter.keras_graph import as_list
from parity.exporter.stream_plan import StreamPlan, state_layout
from parity.exporter.stream_twin import StreamModel


class TwinStream:
    """A stream graph in Keras, fed chunk by chunk.

    Args:
        twin: the stream graph and its names.
        batch: the number of rows.
        model: the Keras model to call in the twin's place (its float64
            rebuild), with the twin's inputs and outputs; the twin's own when None.
        dtype: the float dtype of the states and of float inputs (float64 for
            a float64 rebuild).
    """

    def __init__(
        self, twin: StreamModel, batch: int, *, model: Any = None, dtype: Any = np.float32
    ) -> None:
        self.twin = twin
        self.model = twin.model if model is None else model
        self.outputs = twin.outputs
        self.dtype = np.dtype(dtype)
        self._states = {s.input: np.zeros((batch, s.size), self.dtype) for s in twin.states}

    def feed(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One chunk: its outputs by name; the states move on."""
        arrays = [_as(chunk[name], self.dtype) for name in self.twin.inputs]
        arrays += [self._states[state.input] for state in self.twin.states]
        values = [np.asarray(value) for value in as_list(self.model(arrays, training=False))]
        count = len(self.outputs)
        for state, value in zip(self.twin.states, values[count:], strict=True):
            self._states[state.input] = value
        return {output.name: value for output, value in zip(self.outputs, values, strict=False)}

    def reset(self, rows: Iterable[int] | None = None) -> None:
        """Zeros for ``rows`` (every row when None)."""
        index = slice(None) if rows is None else np.asarray(list(rows), np.int64)
        for name, value in self._states.items():
            value = value.copy()
            value[index] = 0
            self._states[name] = value

    @property
    def states(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self._states.items()}


class StatefulKeras:
    """A stateful Keras model called chunk by chunk, eagerly, at the batch it
    was built for (``plan.keras_batch``); its states are its layers' own.

    Args:
        model: the stateful functional model.
        plan: :func:`parity.exporter.stream_plan.plan_stream`'s answer for it.
    """

    def __init__(self, model: Any, plan: StreamPlan) -> None:
        from parity.exporter.keras_graph import input_names

        self.model = model
        self.outputs = plan.outputs
        self.batch = plan.keras_batch
        self._inputs = input_names(model)
        self._layers = {layer.name: layer for layer in plan.recurrent}
        self._layout = [state for layer in plan.recurrent for state in state_layout(layer)]

    def feed(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One chunk: its outputs by name; the layers' states move on."""
        arrays = [chunk[name] for name in self._inputs]
        values = self.model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        values = as_list(values)
        return {o.name: np.asarray(v) for o, v in zip(self.outputs, values, strict=True)}

    def reset(self, rows: Iterable[int] | None = None) -> None:
        """Zeros for ``rows`` of every state variable (every row when None)."""
        index = slice(None) if rows is None else np.asarray(list(rows), np.int64)
        for layer in self._layers.values():
            for variable in layer.states:
                value = np.array(variable.numpy())
                value[index] = 0
                variable.assign(value)

    @property
    def states(self) -> dict[str, np.ndarray]:
        return {
            state.input: np.array(self._layers[state.layer].states[state.index].numpy())
            for state in self._layout
        }

    def set_states(self, states: Mapping[str, np.ndarray]) -> None:
        """Assign the layers' state variables (to leave a model as it was found)."""
        for state in self._layout:
            self._layers[state.layer].states[state.index].assign(states[state.input])


def _as(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return value.astype(dtype) if value.dtype.kind == "f" else value
