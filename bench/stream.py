"""Streaming: a stateful model fed one step per call, ONNX Runtime's stream
against Keras' stateful model.

An app that streams (keyword spotting, a sensor classifier, a forecaster fed
one reading at a time) calls its model on each new step and carries the
states between calls: what counts is the time of one call of one step, at
batch 1 (latency) and at a large batch (throughput). Two zoo architectures
are built with their recurrent layer ``stateful=True``, untrained, and
exported as stream bundles: ``seq_tagger``'s (LSTM, then a Dense per step)
and ``masked_lstm``'s (Masking, LSTM, a softmax over classes). Each batch
size has its own Keras model (a stateful layer keeps one state per row of the
batch it was built for), with the same weights. Methods, each called on a
chunk of one step, its states carried:

- ``onnxruntime stream``: :meth:`parity.runtime.Stream.feed`;
- ``tf.function stateful``: the stateful model in a ``tf.function`` traced
  for the chunk's shape, its states in its layers' variables;
- ``tf.function XLA stateful``: the same with ``jit_compile=True``.

Every way starts from zeros (each has its own copy of the model), so that
its first output can be checked against ONNX Runtime's. A row's note gives
the steps per second over all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parity.bench.cases import BATCHES, Case, _time_ways
from parity.bench.flops import count_flops, recurrent_gemms
from parity.bench.result import CPU, Row, Settings

MODELS = ("seq_tagger", "masked_lstm")
ORT_STREAM = "onnxruntime stream"
TF_STATEFUL = "tf.function stateful"
TF_XLA_STATEFUL = "tf.function XLA stateful"
METHODS = (TF_STATEFUL, TF_XLA_STATEFUL, ORT_STREAM)


def stream_case(settings: Settings, folder: Path, names: Sequence[str]) -> Case:
    """Rows of every method for each of ``names`` (of :data:`MODELS`), on the
    CPU, at the preset's batches, one step per call."""
    import keras

    from parity import models, runtime
    from parity.exporter import export_model

    rows, gemms = [], []
    for name in (name for name in MODELS if name in names):
        dims = models.get(name).preset(settings.preset).dims
        first = None
        for batch in settings.batches or BATCHES[settings.preset]:
            copies = [stateful_model(name, dims, batch) for _ in range(3)]
            if first is None:
                first = copies[0]
            for copy in copies:
                copy.set_weights(first.get_weights())
            if copies[0] is first:
                export_model(first, folder / name)  # the graph takes any batch
            stream = runtime.open_stream(folder / name, batch=batch, device="cpu")
            x = np.random.default_rng(batch).uniform(0.25, 1.0, (batch, 1, dims["features"]))
            x = x.astype(np.float32)
            gemms += recurrent_gemms(first, batch)
            timed = _time_ways(
                _ways(stream, copies[1:], x), METHODS, settings, builders=(TF_XLA_STATEFUL,)
            )
            flops = count_flops(copies[0], batch, 1)
            for method, (timing, note) in timed.items():
                rate = f"{batch / timing.median:,.0f} steps/s" if timing else ""
                note = "; ".join(part for part in (rate, note) if part)
                rows.append(Row(f"{name} stream", batch, CPU, method, timing, flops, note))
        keras.backend.clear_session()
    return Case(tuple(rows), tuple(gemms))


def stateful_model(name: str, dims: dict[str, Any], batch: int) -> Any:
    """Zoo model ``name``'s architecture (:data:`MODELS`) with a stateful
    recurrent layer, built for ``batch`` rows and any number of steps."""
    import keras
    from keras import layers

    x = keras.Input(batch_shape=(batch, None, dims["features"]), name="sequence")
    if name == "seq_tagger":
        h = layers.LSTM(dims["units"], return_sequences=True, stateful=True)(x)
        y = layers.Dense(dims["features"], activation="softmax", name="tags")(h)
    else:
        h = layers.LSTM(dims["units"], stateful=True)(layers.Masking(0.0)(x))
        y = layers.Dense(dims["classes"], activation="softmax", name="probs")(h)
    return keras.Model(x, y, name=f"{name}_stream")


def _ways(stream: Any, models: list[Any], x: np.ndarray) -> dict[str, Any]:
    """ONNX Runtime first: its first output is the one the others must give."""
    import tensorflow as tf

    tf_model, xla_model = models
    chunk = tf.constant(x)
    traced = tf.function(lambda t: tf_model(t, training=False))

    def compiled() -> Any:
        call = tf.function(lambda t: xla_model(t, training=False), jit_compile=True)
        return lambda: np.asarray(call(chunk))

    return {
        ORT_STREAM: lambda: next(iter(stream.feed(x).values())),
        TF_STATEFUL: lambda: np.asarray(traced(chunk)),
        TF_XLA_STATEFUL: compiled,
    }
