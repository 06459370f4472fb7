"""Whether a Keras model can be exported as a stream, and how.

A model *streams* when feeding its sequence in chunks, with every recurrent
layer's states carried from one chunk to the next, gives what Keras gives:

- for a stateful model (every recurrent layer ``stateful=True``, a fixed
  batch), what the model itself computes when called chunk after chunk;
- for a stateless forward model exported on request (``--streaming``), what
  one call over the whole sequence computes, at every valid step.

That holds when every layer computes step ``t`` from steps up to ``t`` and
carries nothing across steps but the recurrent states: forward recurrent
layers, and layers that act on each step alone (Dense, Activation, Dropout,
Embedding, Masking, TimeDistributed, normalisations over features, merges of
per-step values, a ``Conv1D`` of kernel 1). A recurrent layer that returns
its last output only ends the time axis: what follows computes a *per-chunk*
output, the value after the chunk's last step (a many-to-one model's answer
so far). Everything else is refused with the reason (:class:`NotStreamable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parity.exporter.keras_graph import (
    all_layers,
    calls,
    calls_in_order,
    graph_calls,
    input_names,
    is_recurrent,
    model_inputs,
    model_outputs,
)
from parity.exporter.keras_io import keras_output_names
from parity.exporter.signature import input_domain
from parity.runtime.bundle_format.streaming import (
    Source,
    StreamOutput,
    StreamState,
    state_input,
    state_output,
)
from parity.runtime.errors import ParityError


class NotStreamable(ParityError):
    """The model cannot be exported as a stream; the message says why."""


# Layers that act on each time step alone, on a (batch, time, ...) tensor.
PER_STEP = frozenset(
    {
        *("Activation", "ActivityRegularization", "AlphaDropout", "Dense", "Dropout", "ELU"),
        *("Embedding", "GaussianDropout", "GaussianNoise", "Identity", "LeakyReLU", "Masking"),
        *("PReLU", "ReLU", "Rescaling", "SpatialDropout1D", "TimeDistributed"),
    }
)
# Per step when they normalise over feature axes, not over axis 1 (time).
AXIS_CHECKED = frozenset(
    {"BatchNormalization", "LayerNormalization", "Normalization", "Softmax", "UnitNormalization"}
)
MERGES = frozenset({"Add", "Average", "Maximum", "Minimum", "Multiply", "Subtract", "Concatenate"})
# Layers that read other steps, and how, in words.
READS_OTHER_STEPS = {
    "Flatten": "flattens the time axis (every step of the chunk, and a fixed length)",
    "GlobalAveragePooling1D": "pools over every step of the time axis",
    "GlobalMaxPooling1D": "pools over every step of the time axis",
    "MaxPooling1D": "pools neighbouring steps (and changes the time axis)",
    "AveragePooling1D": "pools neighbouring steps (and changes the time axis)",
    "Attention": "attends over the sequence: each step reads other steps",
    "AdditiveAttention": "attends over the sequence: each step reads other steps",
    "MultiHeadAttention": "attends over the sequence: each step reads other steps",
    "Bidirectional": "runs a backward layer from the sequence's end: it reads later steps",
    "Reshape": "reshapes across the time axis",
    "Permute": "moves the time axis",
    "RepeatVector": "makes a new time axis that is not the chunk's",
    "Cropping1D": "shifts steps along the time axis",
    "ZeroPadding1D": "shifts steps along the time axis",
    "UpSampling1D": "repeats steps along the time axis",
    "Lambda": "runs Python code parity cannot read (it may read any step)",
}
# Of those, the ones that act within one sample where there is no time axis.
PER_SAMPLE = frozenset({"Flatten", "Reshape", "Permute"})
# Keras ops (not layers) in a functional graph, mostly where Keras 3 computes
# a mask (Masking: NotEqual, then Any over the features; Embedding(mask_zero):
# NotEqual): elementwise ones act on each step alone, reductions do over
# feature axes.
ELEMENTWISE_OPS = frozenset(
    {
        *("Abs", "Add", "Cast", "Divide", "Equal", "Exp", "Greater", "GreaterEqual", "Less"),
        *("LessEqual", "LogicalAnd", "LogicalNot", "LogicalOr", "Maximum", "Minimum"),
        *("Multiply", "Negative", "NotEqual", "Relu", "Sigmoid", "Subtract", "Tanh", "Where"),
    }
)
REDUCTIONS = frozenset({"All", "Any", "Max", "Mean", "Min", "Sum"})
CONVOLUTIONS_1D = frozenset({"Conv1D", "SeparableConv1D", "DepthwiseConv1D", "Conv1DTranspose"})

MASKED_STEPS = (
    "a masked step keeps every state; a per-step output at a masked step repeats the last "
    "valid output of the same chunk, and is zeros before the chunk's first valid step (Keras "
    "restarts that repetition at every call, so these outputs depend on the chunking, where "
    "the states and the valid steps do not); a per-chunk output of a row whose whole chunk "
    "is masked is zeros"
)


@dataclass(frozen=True)
class StreamPlan:
    """What the analysis found: where the stream comes from, the recurrent
    layers in the graph's order, each output per step or per chunk, the batch
    a stateful model was built for, what a masked step does (None without a
    mask) and notes for the manifest."""

    source: Source
    recurrent: tuple[Any, ...]
    outputs: tuple[StreamOutput, ...]
    keras_batch: int | None
    masked_steps: str | None
    notes: tuple[str, ...] = ()


def is_stateful(model: Any) -> bool:
    """Whether any recurrent layer of ``model`` (at any depth) is stateful."""
    return any(is_recurrent(layer) and layer.stateful for layer in all_layers(model))


def plan_stream(model: Any, *, streaming: bool = False) -> StreamPlan:
    """Check that ``model`` streams, and say how.

    Args:
        model: a functional Keras model.
        streaming: export a stateless model as a stream (``--streaming``); a
            model whose recurrent layers are stateful streams without it.

    Raises:
        NotStreamable: with the first reason found.
    """
    import keras

    where = f"model {model.name!r}"
    for call in graph_calls(model):
        if isinstance(call.layer, keras.Model):
            raise NotStreamable(
                f"{where}: layer {call.layer.name!r} is a nested model; call its layers in the "
                "outer model (a stream is one functional graph)"
            )
    layers = [layer for layer in all_layers(model) if is_recurrent(layer)]
    stateful = [layer.name for layer in layers if layer.stateful]
    if not layers:
        raise NotStreamable(f"{where}: has no recurrent layer, so no state to carry")
    if stateful and len(stateful) != len(layers):
        plain = [layer.name for layer in layers if not layer.stateful]
        raise NotStreamable(
            f"{where}: some recurrent layers are stateful ({', '.join(map(repr, stateful))}) and "
            f"some not ({', '.join(map(repr, plain))}): a stateless layer restarts from zeros "
            "at every call, which a stream does not; make every recurrent layer stateful"
        )
    if not stateful and not streaming:
        raise NotStreamable(
            f"{where}: no recurrent layer is stateful; export it as a stream on request "
            "(--streaming, streaming=True)"
        )
    kind = {id(tensor): "step" for tensor in _sequence_inputs(model, where)}
    recurrent, notes, masked = [], [], []
    for call in calls_in_order(model):
        layer = call.layer
        if isinstance(layer, keras.layers.InputLayer):
            continue
        reads = {kind[id(tensor)] for tensor in call.inputs}
        name, cls = layer.name, type(layer).__name__
        if cls == "Masking" or (cls == "Embedding" and layer.mask_zero):
            masked.append(layer)
        if is_recurrent(layer):
            _check_recurrent(model, call, reads, where)
            recurrent.append(layer)
            if layer.unroll:
                notes.append(f"layer {name!r} has unroll=True; the stream runs it as a loop")
            made = ["step" if layer.return_sequences else "chunk"] + ["chunk"] * len(call.outputs)
        elif "chunk" in reads:
            if "step" in reads:
                raise NotStreamable(
                    f"{where}: layer {name!r} ({cls}) combines per-step values with the value "
                    "after the chunk's last step"
                )
            if cls in READS_OTHER_STEPS and cls not in PER_SAMPLE:
                raise NotStreamable(f"{where}: layer {name!r} ({cls}) {READS_OTHER_STEPS[cls]}")
            made = ["chunk"] * len(call.outputs)
        else:
            _check_per_step(layer, call, where)
            made = ["step"] * len(call.outputs)
        for tensor, what in zip(call.outputs, made, strict=False):
            kind[id(tensor)] = what
    if not recurrent:
        raise NotStreamable(f"{where}: no recurrent layer reads the sequence's time axis")
    names = keras_output_names(model)
    outputs = tuple(
        StreamOutput(name, kind[id(tensor)])
        for name, tensor in zip(names, model_outputs(model), strict=True)
    )
    keras_batch = None
    if stateful:
        batches = {tensor.shape[0] for tensor in model_inputs(model)}
        if len(batches) != 1 or None in batches:
            # Keras refuses this too ("the batch size must be static")
            raise NotStreamable(f"{where}: a stateful model needs one fixed batch size")
        keras_batch = int(batches.pop())
    masked_steps = None
    if masked:
        zeros = [layer.name for layer in recurrent if layer.zero_output_for_mask]
        masked_steps = MASKED_STEPS + (
            f" (zeros at every masked step for {', '.join(map(repr, zeros))}, "
            "zero_output_for_mask=True)"
            if zeros
            else ""
        )
    source = "stateful" if stateful else "streaming"
    return StreamPlan(source, tuple(recurrent), outputs, keras_batch, masked_steps, tuple(notes))


def state_layout(layer: Any) -> tuple[StreamState, ...]:
    """The states of a recurrent ``layer`` as the stream carries them: kind
    "h" (and "c" for two states, an LSTM's), or "s0", "s1", ... for more.

    Raises:
        NotStreamable: a state that is not a vector (ConvLSTM, nested states).
    """
    size = layer.cell.state_size
    sizes = (size,) if isinstance(size, int) else tuple(size)
    if not sizes or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise NotStreamable(
            f"layer {layer.name!r} ({type(layer).__name__}) has states {size!r}; a stream "
            "carries vector states only (LSTM, GRU, SimpleRNN, RNN over such a cell)"
        )
    kinds = {1: ("h",), 2: ("h", "c")}.get(len(sizes), tuple(f"s{i}" for i in range(len(sizes))))
    return tuple(
        StreamState(
            layer=layer.name,
            kind=kind,
            index=index,
            size=int(width),
            input=state_input(layer.name, kind),
            output=state_output(layer.name, kind),
        )
        for index, (kind, width) in enumerate(zip(kinds, sizes, strict=True))
    )


def _sequence_inputs(model: Any, where: str) -> list[Any]:
    """The model's inputs, each a sequence (batch, time, ...) or token ids
    (batch, time) read by an ``Embedding``."""
    for name, tensor in zip(input_names(model), model_inputs(model), strict=True):
        shape = tuple(tensor.shape)
        tokens = len(shape) == 2 and input_domain(model, tensor)["kind"] == "tokens"
        if len(shape) < 3 and not tokens:
            raise NotStreamable(
                f"{where}: input {name!r} of shape {shape} is not a sequence (batch, time, "
                "features) nor token ids an Embedding reads"
            )
    return model_inputs(model)


def _check_recurrent(model: Any, call: Any, reads: set[str], where: str) -> None:
    layer = call.layer
    name = layer.name
    if len(calls(layer, model)) != 1:
        raise NotStreamable(
            f"{where}: recurrent layer {name!r} is called more than once; each call would need "
            "its own state"
        )
    if layer.go_backwards:
        raise NotStreamable(
            f"{where}: layer {name!r} has go_backwards=True: it runs from the chunk's last step "
            "back, so its output depends on later steps"
        )
    initial = call.kwargs.get("initial_state")
    if initial is None and len(call.args) > 1:
        initial = call.args[1]
    if initial is not None:
        raise NotStreamable(
            f"{where}: layer {name!r} is called with initial_state, which sets its state at every "
            "call; a stream carries the state from the previous chunk instead"
        )
    if reads != {"step"}:
        raise NotStreamable(
            f"{where}: layer {name!r} reads a value computed after the chunk's last step, not "
            "the chunk's steps"
        )
    if type(layer).__name__.startswith("ConvLSTM"):
        raise NotStreamable(f"{where}: layer {name!r} has image states; not streamed")
    state_layout(layer)


def _check_per_step(layer: Any, call: Any, where: str) -> None:
    """``layer``, reading per-step tensors, must compute each step alone."""
    import keras

    name, cls = layer.name, type(layer).__name__
    rank = len(call.inputs[0].shape) if call.inputs else 0
    if not isinstance(layer, keras.layers.Layer):  # a Keras op in the graph
        axis = getattr(layer, "axis", None)
        axes = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
        if cls in ELEMENTWISE_OPS or (
            cls in REDUCTIONS and axes and all(a % rank >= 2 for a in axes)
        ):
            return
        raise NotStreamable(
            f"{where}: operation {name!r} ({cls}) is not known to act on each step alone"
        )
    if cls in READS_OTHER_STEPS:
        raise NotStreamable(f"{where}: layer {name!r} ({cls}) {READS_OTHER_STEPS[cls]}")
    if cls in CONVOLUTIONS_1D:
        kernel, strides = tuple(layer.kernel_size), tuple(layer.strides)
        if kernel == (1,) and strides == (1,):
            return  # a matrix product at each step
        why = (
            "reads the previous steps of its receptive field, which the chunk does not hold (it "
            "would need a carried buffer of its inputs: not streamed)"
            if layer.padding == "causal"
            else f"with padding {layer.padding!r} reads later steps"
        )
        raise NotStreamable(f"{where}: layer {name!r} ({cls}, kernel {kernel[0]}) {why}")
    if cls in AXIS_CHECKED:
        axis = getattr(layer, "axis", -1)
        axes = [axis] if isinstance(axis, int) else list(axis)
        if any(a % rank in (0, 1) for a in axes):
            raise NotStreamable(
                f"{where}: layer {name!r} ({cls}) normalises over axis {axis}, the time axis"
            )
        return
    if cls in MERGES:
        if cls == "Concatenate" and layer.axis % rank in (0, 1):
            raise NotStreamable(f"{where}: layer {name!r} joins tensors along the time axis")
        return
    if cls == "TimeDistributed":
        if any(is_recurrent(inner) and inner.stateful for inner in all_layers(layer)):
            raise NotStreamable(f"{where}: layer {name!r} wraps a stateful layer")
        return
    if cls in PER_STEP:
        return
    if not type(layer).__module__.startswith("keras."):
        raise NotStreamable(
            f"{where}: layer {name!r} is a custom layer ({cls}); parity cannot tell whether it "
            "reads other steps"
        )
    raise NotStreamable(
        f"{where}: layer {name!r} ({cls}) is not known to act on each step alone; a stream "
        "takes forward recurrent layers and layers that act on each step"
    )
