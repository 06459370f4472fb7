"""A Keras model's inputs and outputs as the exported graph names them, and
calling the model on named arrays: TensorFlow's side of every comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.exporter.keras_graph import (
    input_names,
    is_recurrent,
    model_inputs,
    model_outputs,
    producer,
)
from parity.exporter.signature import input_domain
from parity.runtime.errors import ParityError
from parity.runtime.inputs import check_token_ids


def keras_output_names(model: Any) -> list[str]:
    """The names the exporter gives the outputs: the layers that produce them.
    A recurrent layer returning its states names them ``<layer>_h``/``<layer>_c``
    (LSTM) or ``<layer>_h`` (GRU, SimpleRNN); other extra outputs ``<layer>_<i>``."""
    names = [_output_name(tensor) for tensor in model_outputs(model)]
    if len(set(names)) != len(names):
        raise ParityError(f"model {model.name!r}: two outputs would share a name ({names})")
    return names


def _output_name(tensor: Any) -> str:
    layer, index = producer(tensor)
    if index == 0:
        return layer.name
    if is_recurrent(layer) and layer.return_state:
        kinds = ("h", "c") if type(layer.cell).__name__ == "LSTMCell" else ("h",)
        per_direction = len(kinds)
        offset = index - 1
        direction = ("", "_backward")[offset // per_direction] if offset >= per_direction else ""
        return f"{layer.name}_{kinds[offset % per_direction]}{direction}"
    return f"{layer.name}_{index}"


def keras_outputs(model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call ``model`` eagerly in inference mode on named inputs; outputs named
    as in the exported graph. (Eager, not ``predict``: inside ``tf.function``
    Keras 3's ``TimeDistributed`` is wrong over a dynamic time axis.)

    Token ids (inputs that feed an ``Embedding``) are checked against the
    vocabulary first, as the ONNX side checks them (TensorFlow fails with a
    traceback on an id beyond it), and cast to the ``Input``'s dtype.

    Raises:
        ParityError: an input is missing; :class:`InputError` for a token id
            outside the vocabulary.
    """
    names = input_names(model)
    missing = [name for name in names if name not in inputs]
    if missing:
        raise ParityError(f"Keras model input {missing[0]!r} is not among the inputs given")
    arrays = [
        _checked_tokens(model, tensor, name, inputs[name])
        for name, tensor in zip(names, model_inputs(model), strict=True)
    ]
    values = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    if isinstance(values, dict):
        values = list(values.values())
    values = values if isinstance(values, list | tuple) else [values]
    return {
        name: np.asarray(value)
        for name, value in zip(keras_output_names(model), values, strict=True)
    }


def _checked_tokens(model: Any, tensor: Any, name: str, value: Any) -> Any:
    """``value`` as the ``Input``'s dtype once its token ids are checked, if
    the input feeds an ``Embedding``; else ``value`` as it is."""
    domain = input_domain(model, tensor)
    if domain.get("kind") != "tokens":
        return value
    array = np.asarray(value)
    check_token_ids(name, array, domain["vocab"])
    return array.astype(str(tensor.dtype), copy=False)
