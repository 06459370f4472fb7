"""TensorFlow's seq2seq generation: the reference that ONNX Runtime's
generation is held to.

The loop is a ``tf.while_loop`` over the split's step model, traced once per
split whatever the number of steps (an unrolled 150-step graph takes 90 s to
trace).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.exporter.keras_graph import as_list, layer_name
from parity.exporter.split import Seq2SeqSplit
from parity.runtime.errors import ParityError

_GENERATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def reference_generate(
    split: Seq2SeqSplit,
    encoder_inputs: Mapping[str, np.ndarray] | np.ndarray,
    start: np.ndarray,
    steps: int,
    stop_token: int | None = None,
) -> np.ndarray:
    """Generate ``steps`` steps with TensorFlow: run the encoder, then the step
    model once per step, feeding each output back by ``split.feedback``.

    ``start`` is the first step input, shaped like the step input (time length
    1; the time axis may be left out). Returns the step outputs stacked over
    time, ``(batch, steps, ...)``. With ``stop_token``, a row that emits it
    keeps repeating that output (so it keeps emitting the token), and the
    generation ends once every row has emitted it: it may return fewer steps.

    The loop is a ``tf.while_loop`` over the step model, traced once per split
    whatever ``steps`` is (an unrolled 150-step graph takes 90 s to trace)."""
    import tensorflow as tf

    if steps < 1:
        raise ParityError(f"steps must be at least 1, got {steps}")
    if stop_token is not None and split.feedback == "identity":
        raise ParityError(
            "stop_token: the model feeds its output back as it is; expected a decoder of tokens"
        )
    encoder_x = _encoder_array(split, encoder_inputs)
    step_dtype = split.step.inputs[0].dtype
    start = np.asarray(start)
    step_rank = len(split.step.inputs[0].shape)
    if start.ndim == step_rank - 1:
        start = np.expand_dims(start, 1)
    if start.ndim != step_rank or start.shape[1] != 1:
        raise ParityError(
            f"start: expected shape {tuple(split.step.inputs[0].shape)} with time length 1, "
            f"got {start.shape}"
        )
    if split.step not in _GENERATORS:
        _GENERATORS[split.step] = tf.function(_generation_body(split), reduce_retracing=True)
    result = _GENERATORS[split.step](
        tf.constant(encoder_x),
        tf.constant(start.astype(step_dtype)),
        tf.constant(steps, tf.int32),
        stop_token,
    )
    return np.asarray(result)


def _encoder_array(split: Seq2SeqSplit, encoder_inputs: Any) -> np.ndarray:
    if isinstance(encoder_inputs, Mapping):
        if split.encoder_input not in encoder_inputs:
            raise ParityError(
                f"encoder inputs: no array named {split.encoder_input!r} "
                f"(has: {', '.join(encoder_inputs)})"
            )
        encoder_inputs = encoder_inputs[split.encoder_input]
    return np.asarray(encoder_inputs).astype(split.encoder.inputs[0].dtype, copy=False)


def tensorflow_feedback(split: Seq2SeqSplit):
    """The split's feedback rule as a TensorFlow function: a step's output to
    the next step's input (as it is, or its argmax as a one-hot or a token id).

    Args:
        split: the seq2seq split whose step model's input the result feeds.
    """
    import tensorflow as tf

    step_input = split.step.inputs[0]
    features = step_input.shape[-1]

    def feed_back(output):
        if split.feedback == "identity":
            return output
        token = tf.argmax(output, axis=-1)
        if split.feedback == "argmax_onehot":
            return tf.one_hot(token, features, dtype=step_input.dtype)
        return tf.cast(token, step_input.dtype)

    return feed_back


def _generation_body(split: Seq2SeqSplit):
    import tensorflow as tf

    encoder_names = [layer_name(t) for t in split.encoder.outputs]
    feed_back = tensorflow_feedback(split)

    def generate(encoder_x, start, steps, stop_token):
        encoded = split.encoder(encoder_x, training=False)
        encoded = dict(zip(encoder_names, as_list(encoded), strict=True))
        batch = tf.shape(start)[0]
        states = [
            encoded[spec.encoder_output]
            if spec.init == "encoder"
            else tf.zeros((batch, spec.size), state_input.dtype)
            for spec, state_input in zip(
                split.states, split.step.inputs[1 : 1 + len(split.states)], strict=True
            )
        ]
        memories = [encoded[spec.encoder_output] for spec in split.memories]
        output_shape = split.step.outputs[0].shape[1:]
        last = tf.zeros((batch, *output_shape), split.step.outputs[0].dtype)
        outputs = tf.TensorArray(last.dtype, size=0, dynamic_size=True)
        stopped = tf.zeros((batch,), tf.bool)

        def more(t, x, states, last, stopped, outputs):
            return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(stopped)))

        def step(t, x, states, last, stopped, outputs):
            output, *states = split.step([x, *states, *memories], training=False)
            if stop_token is not None:
                held = tf.reshape(stopped, [-1] + [1] * (len(output.shape) - 1))
                output = tf.where(held, last, output)
                stopped = tf.logical_or(
                    stopped, tf.equal(tf.argmax(output[:, 0], axis=-1), stop_token)
                )
            return t + 1, feed_back(output), states, output, stopped, outputs.write(t, output[:, 0])

        loop_vars = (tf.constant(0), start, states, last, stopped, outputs)
        *_, outputs = tf.while_loop(more, step, loop_vars)
        stacked = outputs.stack()
        return tf.transpose(stacked, [1, 0, *range(2, len(stacked.shape))])

    return generate
