"""LiteRT (TensorFlow Lite), what a TensorFlow user who embeds a model runs.

A model is converted for the exact input shapes of the call it is timed on
(LiteRT plans its memory for fixed shapes) and run by the interpreter of the
``ai-edge-litert`` package (``tf.lite.Interpreter`` is deprecated), on every
core the process may use. A seq2seq generation converts its encoder and its
step model apart and loops over the step model from Python: converting the
whole generation needs TensorFlow ops LiteRT lacks (a ``TensorArray``; the
Flex delegate), which this interpreter cannot run.

Where a model does not convert, :class:`Unconvertible` says why in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from parity.exporter.keras_graph import layer_name, rebuilt

NOT_INSTALLED = "ai-edge-litert is not installed (pip install 'parity[bench]')"
# The longest reason kept from a converter's message.
REASON_CHARS = 160


class Unconvertible(Exception):
    """LiteRT cannot run this model here; the message says why."""


def litert_call(model: Any, arrays: list[np.ndarray]) -> Callable[[], np.ndarray]:
    """``model`` on ``arrays`` (its inputs, in order) as a LiteRT call that
    returns the first output."""
    run = _runner(_without_dropout(model), [a.shape for a in arrays])
    feeds = [np.ascontiguousarray(a) for a in arrays]
    return lambda: run(*feeds)[0]


def litert_generate(
    split: Any, inputs: Mapping[str, np.ndarray], start: np.ndarray, steps: int
) -> Callable[[], np.ndarray]:
    """A generation with LiteRT: the encoder once, then the step model from a
    Python loop, its output fed back as it is (``feedback`` "identity")."""
    if split.feedback != "identity":
        raise Unconvertible(f"feedback {split.feedback!r}: only 'identity' is looped here")
    encoder_x = np.ascontiguousarray(inputs[split.encoder_input])
    batch = encoder_x.shape[0]
    encode = _runner(split.encoder, [encoder_x.shape])
    step = _runner(split.step, [start.shape, *((batch, spec.size) for spec in split.states)])
    encoder_names = [layer_name(t) for t in split.encoder.outputs]

    def generate() -> np.ndarray:
        named = dict(zip(encoder_names, encode(encoder_x), strict=True))
        states = [
            named[spec.encoder_output]
            if spec.init == "encoder"
            else np.zeros((batch, spec.size), np.float32)
            for spec in split.states
        ]
        x, outputs = start, []
        for _ in range(steps):
            x, *states = step(x, *states)
            outputs.append(x)
        return np.concatenate(outputs, axis=1)

    return generate


def _without_dropout(model: Any) -> Any:
    """``model``, or a copy with the same weights whose recurrent layers have
    no dropout. Dropout does nothing at inference, but a recurrent layer with
    dropout updates its seed generator's variable even then, and a graph that
    assigns a variable cannot be frozen for the converter."""

    def dropout(layer: Any) -> bool:
        config = layer.get_config()
        return bool(config.get("dropout") or config.get("recurrent_dropout"))

    if not any(dropout(layer) for layer in model.layers):
        return model

    def replace(layer: Any) -> Any:
        if not dropout(layer):
            return layer
        config = layer.get_config()
        config.update(dropout=0.0, recurrent_dropout=0.0)
        return type(layer).from_config(config)

    return rebuilt(model, replace)


def _runner(model: Any, shapes: list[tuple[int, ...]]) -> Callable[..., list[np.ndarray]]:
    """``model`` converted for ``shapes``, as a function of its inputs (in
    order) that returns its outputs (in order). The variables are frozen into
    constants first: converted with them as variables, the LSTMs' ``WHILE``
    fails to read them (READ_VARIABLE). One trial call checks that it runs."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise Unconvertible(NOT_INSTALLED) from None

    specs = [
        tf.TensorSpec(shape, tensor.dtype, name=f"in{i}")
        for i, (shape, tensor) in enumerate(zip(shapes, model.inputs, strict=True))
    ]

    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    try:
        function = tf.function(forward).get_concrete_function(*specs)
        frozen = convert_variables_to_constants_v2(function)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
        interpreter = Interpreter(model_content=converter.convert(), num_threads=_cores())
        interpreter.allocate_tensors()
        by_name = {d["name"]: d["index"] for d in interpreter.get_input_details()}
        inputs = [by_name[f"in{i}"] for i in range(len(specs))]
        by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        outputs = [by_name[t.name.split(":")[0]] for t in frozen.outputs]

        def run(*arrays: np.ndarray) -> list[np.ndarray]:
            for index, array in zip(inputs, arrays, strict=True):
                interpreter.set_tensor(index, array)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in outputs]

        run(*(np.zeros(spec.shape, spec.dtype.as_numpy_dtype) for spec in specs))
    except Exception as exc:  # the converter and the interpreter raise many kinds
        raise Unconvertible(_reason(exc)) from None
    return run


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _reason(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    flex = [line for line in lines if "Flex" in line or "select tf ops" in line.lower()]
    text = (flex or lines or [type(exc).__name__])[0]
    return f"does not convert to LiteRT: {text[:REASON_CHARS]}"
