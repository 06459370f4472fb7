"""Repairs applied to a Keras model before it is traced for conversion.

Keras 3's ``TimeDistributed`` over a dynamic time axis traces to a wrong
graph: inside ``tf.function`` it maps its inner layer with ``vectorized_map``
over a length it takes from the wrong axis, so the converted model returns
(batch, batch, ...) shapes or fails inside a ``Loop`` (../shared/FACTS.md
records the symptoms). Calling the model eagerly is right, which is why the
bug is silent. The repair rewrites every ``TimeDistributed`` into the form
that traces correctly whatever the shapes: fold time into batch, apply the
same inner layer (same weights), unfold.

It folds time-major, (time, batch) into one axis: ONNX's recurrent ops read
time-major sequences, so the transpose tf2onnx writes before a recurrent
layer cancels against the unfold's, and what is transposed is the
``TimeDistributed`` input instead. For the seed ``td_cnn_lstm`` that is the
frames rather than five times as many convolution features: 22 to 20 ms at
batch 1, 241 to 225 ms at batch 16; a ``TimeDistributed(Dense)`` after an
LSTM (``seq_tagger``, batch 256) 10.1 to 9.3 ms; outputs bit for bit the same.
"""

from __future__ import annotations

from typing import Any

from parity.exporter.keras_graph import all_layers, rebuilt


def needs_repair(model: Any) -> bool:
    return any(_is_time_distributed(layer) for layer in all_layers(model))


def repair(model: Any) -> Any:
    """``model`` with every ``TimeDistributed`` folded; the other layers are the
    model's own objects, so weights are shared. Models without one come back
    unchanged."""
    if not needs_repair(model):
        return model
    import keras

    def replace(layer: Any) -> Any:
        if _is_time_distributed(layer):
            return _folded_class()(layer.layer, name=layer.name)
        if isinstance(layer, keras.Model):
            return repair(layer)
        return layer

    return rebuilt(model, replace)


def _is_time_distributed(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.layers.TimeDistributed) and not getattr(layer, "folded", False)


_FOLDED: list[type] = []


def _folded_class() -> type:
    """The folded ``TimeDistributed``, defined once and only when needed so that
    importing this module does not import Keras."""
    if _FOLDED:
        return _FOLDED[0]
    import keras
    from keras import ops

    class FoldedTimeDistributed(keras.layers.TimeDistributed):
        """``TimeDistributed`` as (time * batch, ...) -> inner layer -> (batch, time, ...)."""

        folded = True

        def call(self, inputs, training=None, mask=None):
            shape = ops.shape(inputs)
            swap = (1, 0, *range(2, len(inputs.shape)))
            folded = ops.reshape(ops.transpose(inputs, swap), (-1, *inputs.shape[2:]))
            outputs = self.layer(folded, training=training)
            unfolded = ops.reshape(outputs, (shape[1], shape[0], *outputs.shape[1:]))
            return ops.transpose(unfolded, (1, 0, *range(2, len(unfolded.shape))))

    _FOLDED.append(FoldedTimeDistributed)
    return FoldedTimeDistributed
