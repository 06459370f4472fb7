"""The forms a Keras model comes in, brought to the one the exporter walks.

tf2onnx 1.17's ``from_keras`` fails on every Keras 3 ``Sequential`` model
(``KeyError: 'keras_tensor_N'``: it takes output names from Keras' internal
tensor names), while the same layers wrapped as a functional model convert.
The wrapper shares the layers and their weights and adds no layer call, so
everything read from the graph (masks, fusable forms, names) is the same.
"""

from __future__ import annotations

from typing import Any

from parity.exporter.keras_graph import model_inputs, model_outputs
from parity.runtime.errors import ParityError


def as_functional(model: Any) -> Any:
    """``model`` as a functional model over the same layers.

    Args:
        model: a Keras model: functional models are returned as they are; a
            ``Sequential`` model must know its input shape (an ``Input`` or
            ``InputLayer`` first, ``input_shape=`` on its first layer, or built
            by ``fit``/``build``).

    Raises:
        ParityError: a ``Sequential`` model that was never built, so that its
            input shape is unknown.
    """
    import keras

    if not isinstance(model, keras.Sequential):
        return model
    try:
        inputs, outputs = model_inputs(model), model_outputs(model)
    except (AttributeError, ValueError):
        inputs = outputs = []
    if not inputs or not outputs:
        raise ParityError(
            f"model {model.name!r}: a Sequential model that was never built has no input shape; "
            "start it with keras.Input(shape), or call model.build((None, ...)) before saving"
        )
    return keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=model.name,
    )
