"""TensorFlow compiled with XLA: what a TensorFlow user who wants speed runs.

``tf.function(jit_compile=True)`` compiles the whole traced graph with XLA.
A generation is one ``tf.while_loop`` over the step model whose
``TensorArray`` has the number of steps as its static size: under XLA a
``dynamic_size`` TensorArray returns no steps at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from parity.exporter.keras_generation import tensorflow_feedback
from parity.exporter.keras_graph import as_list, layer_name


def xla_call(model: Any, arrays: list[np.ndarray]) -> Callable[[], np.ndarray]:
    """One XLA-compiled call of ``model`` on ``arrays`` (its inputs, in order),
    returning the first output as numpy. The first call compiles."""
    import tensorflow as tf

    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    call = tf.function(forward, jit_compile=True)
    tensors = [tf.constant(a) for a in arrays]
    return lambda: np.asarray(as_list(call(*tensors))[0])


def xla_generate(
    split: Any, inputs: Mapping[str, np.ndarray], start: np.ndarray, steps: int
) -> Callable[[], np.ndarray]:
    """A whole generation (encoder, then ``steps`` step-model calls, each
    output fed back by ``split.feedback``) as one XLA-compiled function of the
    encoder input and the first step input. Returns ``(batch, steps, ...)``."""
    import tensorflow as tf

    encoder_names = [layer_name(t) for t in split.encoder.outputs]
    output_dtype = split.step.outputs[0].dtype

    feed_back = tensorflow_feedback(split)

    @tf.function(jit_compile=True)
    def generate(encoder_x, first):
        encoded = as_list(split.encoder(encoder_x, training=False))
        encoded = dict(zip(encoder_names, encoded, strict=True))
        batch = tf.shape(first)[0]
        states = [
            encoded[spec.encoder_output]
            if spec.init == "encoder"
            else tf.zeros((batch, spec.size), tf.float32)
            for spec in split.states
        ]
        memories = [encoded[spec.encoder_output] for spec in split.memories]
        outputs = tf.TensorArray(output_dtype, size=steps)

        def body(t, x, states, outputs):
            output, *states = split.step([x, *states, *memories], training=False)
            return t + 1, feed_back(output), states, outputs.write(t, output[:, 0])

        loop_vars = (tf.constant(0), first, states, outputs)
        *_, outputs = tf.while_loop(lambda t, *_: t < steps, body, loop_vars)
        stacked = outputs.stack()
        return tf.transpose(stacked, [1, 0, *range(2, len(stacked.shape))])

    encoder_x = tf.constant(inputs[split.encoder_input])
    first = tf.constant(start)
    return lambda: generate(encoder_x, first).numpy()
