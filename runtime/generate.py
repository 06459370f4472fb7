"""Autoregressive generation from a seq2seq bundle with ONNX Runtime alone.

The encoder graph runs once; the step graph runs once per generated step, its
output fed back as the next input by the manifest's feedback rule and its new
states passed back in as they come out. The loop allocates nothing per step
beyond what ONNX Runtime returns, and checks its inputs once, before the loop.

The stop-token rule is TensorFlow's reference rule
(:func:`parity.exporter.keras_generation.reference_generate`): a row that has emitted the stop
token keeps repeating that output, and generation ends early once every row
has emitted it.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

import numpy as np

from parity.runtime import bounds
from parity.runtime.bundle_format.manifest import Manifest
from parity.runtime.errors import InputError, ParameterError, ParityError
from parity.runtime.inputs import check_feeds
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.npy import MAX_ARRAY_BYTES, MAX_ARRAY_BYTES_VARIABLE

# Longer horizons are refused (here and at export) rather than left to exhaust
# memory; no model of this kind is trained for more. Not raisable.
MAX_STEPS = 100_000
# The inputs of a seq2seq bundle's loop graph besides the encoder's
# (exporter.loop writes the graph): the first step input and the step count.
LOOP_START = "start"
LOOP_STEPS = "steps"


def generate(
    bundle: Any,
    encoder_inputs: Mapping[str, Any] | np.ndarray,
    *,
    start: np.ndarray | None = None,
    steps: int | None = None,
    stop_token: int | None = None,
    use_loop_graph: bool = True,
) -> np.ndarray:
    """Generate from a seq2seq bundle with ONNX Runtime: the encoder once, then
    one decoder step per output step, each output fed back by the manifest's
    feedback rule.

    A bundle with a loop graph (the whole generation in one ONNX ``Loop``)
    runs it in one call unless ``use_loop_graph`` is False or a stop token is
    given; otherwise the encoder runs once and the step graph once per step.

    Args:
        bundle: a loaded seq2seq bundle (:func:`load_bundle`).
        encoder_inputs: the encoder's inputs by name, or the one array of a
            one-input encoder; batch first.
        start: the first step input, shaped like the step input (its time axis
            of length 1 may be left out); default: the manifest's start rule
            (:func:`start_input`).
        steps: how many steps, 1 to :data:`MAX_STEPS`; default: the
            manifest's horizon.
        stop_token: a token id (token decoders only): a row that emits it
            keeps repeating that output, and generation ends once every row has.
        use_loop_graph: run the loop graph where the bundle has one.

    Returns:
        The step outputs stacked over time, ``(batch, steps, ...)``; fewer
        steps when every row has emitted ``stop_token``.

    Raises:
        InputError: inputs that do not fit the graphs.
        ParameterError: ``steps`` out of range, or steps whose outputs would
            take more than the array limit (``PARITY_MAX_ARRAY_BYTES``); a
            ``stop_token`` the model cannot emit.
        RunError: ONNX Runtime failed on inputs that passed the checks.
        LimitError: the generation went beyond a limit of
            :mod:`parity.runtime.bounds` (the step loop's steps count as one run).
    """
    manifest = bundle.manifest
    spec = manifest.seq2seq
    if spec is None:
        raise ParityError(f"{bundle.path}: not a seq2seq bundle; generation needs one")
    steps = spec.steps if steps is None else steps
    check_steps(steps)
    if stop_token is not None and spec.feedback == "identity":
        raise ParityError(
            "stop token: this model feeds its output back as it is; a stop token needs tokens"
        )
    if stop_token is not None:
        _check_token(manifest, stop_token)
    encoder_graph = manifest.graph(spec.encoder_graph)
    encoder_inputs = check_feeds(encoder_graph, _named_encoder_inputs(manifest, encoder_inputs))
    x = start_input(manifest, encoder_inputs) if start is None else _start(manifest, start)
    batch = x.shape[0]
    if batch != next(iter(encoder_inputs.values())).shape[0]:
        raise InputError(f"start: batch {batch} differs from the encoder input's batch")
    _check_result_size(manifest, batch, steps)
    if spec.loop_graph is not None and use_loop_graph and stop_token is None:
        feeds = {**encoder_inputs, LOOP_START: x, LOOP_STEPS: np.array(steps, np.int64)}
        return bundle.run(feeds, graph=spec.loop_graph)[spec.step_output]
    encoded = bundle.run(encoder_inputs, graph=spec.encoder_graph)

    step_graph = manifest.graph(spec.step_graph)
    feeds = {spec.step_input: x}
    for state in spec.states:
        if state.init == "encoder":
            feeds[state.step_input] = encoded[state.encoder_output]
        else:
            feeds[state.step_input] = np.zeros((batch, state.size), np.float32)
    for memory in spec.memories:  # read again at every step, unchanged
        feeds[memory.step_input] = encoded[memory.encoder_output]
    feeds = check_feeds(step_graph, feeds)
    session = bundle.session(spec.step_graph, batch)
    names = [spec.step_output, *(state.step_output for state in spec.states)]
    state_inputs = [state.step_input for state in spec.states]
    feed_back = _feedback(spec.feedback, feeds[spec.step_input])

    result = None
    stopped = np.zeros(batch, bool) if stop_token is not None else None
    with bounds.watched() as options:  # the steps together are one run
        for t in range(steps):
            output, *states = bounds.run(
                session, names, feeds, f"{step_graph.file}, step {t}", options
            )
            if result is None:
                result = np.empty((batch, steps, *output.shape[2:]), output.dtype)
            if stopped is not None:
                if t:
                    output[stopped] = result[stopped, t - 1][:, None]
                stopped |= output[:, 0].argmax(axis=-1) == stop_token
            result[:, t] = output[:, 0]
            feeds[spec.step_input] = feed_back(output)
            feeds.update(zip(state_inputs, states, strict=True))
            if stopped is not None and stopped.all():
                return result[:, : t + 1]
    return result


def _check_token(manifest: Manifest, token: Any) -> None:
    """Refuse a stop token that no step can emit: not a whole number, or
    outside the step output's classes."""
    spec = manifest.seq2seq
    classes = manifest.graph(spec.step_graph).output(spec.step_output).shape[-1]
    if not isinstance(token, int | np.integer) or isinstance(token, bool):
        raise ParameterError("stop_token", f"must be a token id (an integer), got {token!r}")
    if token < 0 or (isinstance(classes, int) and token >= classes):
        raise ParameterError(
            "stop_token", f"{token} is not a token the model emits (0 to {classes} - 1)"
        )


def _check_result_size(manifest: Manifest, batch: int, steps: int) -> None:
    """Refuse a generation whose stacked outputs would take more than the
    array limit of :mod:`parity.runtime.npy`, before anything runs."""
    spec = manifest.seq2seq
    output = manifest.graph(spec.step_graph).output(spec.step_output)
    step = prod(d for d in output.shape[2:] if isinstance(d, int)) * np.dtype(output.dtype).itemsize
    limit = byte_limit(MAX_ARRAY_BYTES_VARIABLE, MAX_ARRAY_BYTES)
    if batch * steps * step > limit:
        raise ParameterError(
            "steps",
            f"{steps} steps of {batch} rows take {describe_bytes(batch * steps * step)}, beyond "
            f"the limit of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)",
        )


def check_steps(steps: int) -> int:
    """``steps`` as an int if it is a number of steps from 1 to :data:`MAX_STEPS`;
    else :class:`ParameterError` for the parameter ``steps``."""
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool):
        raise ParameterError("steps", f"must be an integer, got {steps!r}")
    if steps < 1:
        raise ParameterError("steps", f"must be at least 1, got {steps}")
    if steps > MAX_STEPS:
        raise ParameterError("steps", f"{steps} is beyond the limit of {MAX_STEPS} steps")
    return int(steps)


def start_input(manifest: Manifest, encoder_inputs: Mapping[str, Any]) -> np.ndarray:
    """The first step input by the manifest's start rule: the last observed
    encoder step ("last_encoder_step"), zeros, or the start token (one-hot or
    id, as the step input takes it), shaped ``(batch, 1, ...)``."""
    spec = manifest.seq2seq
    step = manifest.graph(spec.step_graph).input(spec.step_input)
    encoder_x = np.asarray(encoder_inputs[spec.encoder_input])
    batch = encoder_x.shape[0]
    shape = (batch, 1, *(d for d in step.shape[2:]))
    if any(isinstance(d, str) for d in shape):
        raise ParityError(f"step input {step.name!r} has a dynamic feature axis: give a start")
    if spec.start == "last_encoder_step":
        return np.ascontiguousarray(encoder_x[:, -1:], dtype=step.dtype)
    if spec.start == "token":
        token = spec.start_token or 0
        if spec.feedback == "argmax_onehot":
            start = np.zeros(shape, step.dtype)
            start[..., token] = 1
            return start
        return np.full(shape, token, step.dtype)
    return np.zeros(shape, step.dtype)


def _start(manifest: Manifest, start: Any) -> np.ndarray:
    spec = manifest.seq2seq
    step = manifest.graph(spec.step_graph).input(spec.step_input)
    start = np.asarray(start)
    if start.ndim == step.rank - 1:
        start = np.expand_dims(start, 1)
    if start.ndim != step.rank or start.shape[1] != 1:
        raise InputError(
            f"start: shape {start.shape} does not fit the step input {step.name!r} "
            f"(batch, 1, ...) of shape {tuple(step.shape)}"
        )
    return start


def _named_encoder_inputs(manifest: Manifest, inputs: Any) -> dict[str, np.ndarray]:
    if isinstance(inputs, Mapping):
        return dict(inputs)
    return {manifest.seq2seq.encoder_input: np.asarray(inputs)}


def _feedback(rule: str, like: np.ndarray):
    """The function that turns a step output into the next step input."""
    if rule == "identity":
        return lambda output: output
    if rule == "argmax_onehot":
        buffer = np.zeros_like(like)

        def onehot(output: np.ndarray) -> np.ndarray:
            buffer.fill(0)
            np.put_along_axis(buffer, output.argmax(axis=-1)[..., None], 1, axis=-1)
            return buffer

        return onehot
    if rule == "argmax_token":
        return lambda output: output.argmax(axis=-1).astype(like.dtype)
    raise ParityError(f"unknown feedback rule {rule!r} in the manifest")
