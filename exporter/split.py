"""Splitting a seq2seq training model into an encoder and a one-step decoder.

A seq2seq model is trained with teacher forcing: it reads the encoder input
and the whole decoder input at once. Generation needs something else: run the
encoder once, then the decoder one step at a time, each step's output fed
back as the next step's input. A graph unrolled over every output step would
be huge, slow to trace and fix the number of steps, so the model is split into
two models that share the trained layers:

- the encoder: encoder input -> every decoder state that starts from the
  encoder, one named output per state;
- the step: (step input of time length 1, every decoder state) -> (step
  output, every new state).

The split is found by walking Keras' functional graph, with no code from the
user. The *decoder path* is the chain of layers reached from the model's
output by following, at each layer, its sequence argument (the first
positional one); it must end at a model input, the *decoder input*. The
recurrent layers on that path are the decoder layers; every other layer on it
must act on each step alone (Dense, Dropout, Embedding, ...). Each decoder
layer starts from ``initial_state`` or from zeros; the states given by
``initial_state`` must be computed from the other model input, the *encoder
input*, alone. The encoder is whatever computes them.

TensorFlow's generation with the step model, the reference that ONNX
Runtime's generation is held to, is :mod:`parity.exporter.keras_generation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parity.exporter.keras_graph import (
    LayerCall,
    graph_calls,
    is_input_tensor,
    is_keras_tensor,
    is_recurrent,
    layer_name,
    model_inputs,
    model_outputs,
    producer,
    producing_call,
)
from parity.runtime.bundle_format.manifest import Feedback, MemorySpec, SourceForm, StateSpec
from parity.runtime.errors import ParityError

if TYPE_CHECKING:
    import keras

# Layers that act on each time step alone, so that running them on one step
# of the decoder path gives that step of the training model's output.
_PER_STEP = (
    "Activation",
    "AlphaDropout",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "ELU",
    "Embedding",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "PReLU",
    "ReLU",
    "Softmax",
    "TimeDistributed",
)
# Merges of per-step values: step t of the result needs step t of each part.
_MERGES = ("Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract")
# Attention from each decoder step (the query) to the encoder's sequence.
_ATTENTION = ("AdditiveAttention", "Attention", "MultiHeadAttention")
# Per-step layers that leave their input as it is at inference.
_TRANSPARENT = ("AlphaDropout", "Dropout", "GaussianDropout", "GaussianNoise", "Identity")


@dataclass(frozen=True)
class Seq2SeqSplit:
    """A training model split into an encoder and a one-step decoder that share
    its layers (and so its trained weights).

    ``encoder`` maps ``encoder_input`` to one output per state in ``states``
    whose ``init`` is "encoder", named ``StateSpec.encoder_output``. ``step``
    takes ``step_input`` (time length 1) and then every state's
    ``step_input``, and returns ``step_output`` (time length 1) and then every
    state's ``step_output``, in the order of ``states``. ``feedback`` and
    ``start`` are the rules of :class:`parity.runtime.bundle_format.manifest.Seq2SeqSpec`."""

    encoder: keras.Model
    step: keras.Model
    states: tuple[StateSpec, ...]
    feedback: Feedback
    start: str
    start_token: int | None
    encoder_input: str
    step_input: str
    step_output: str
    decoder_layers: tuple[str, ...]
    form: SourceForm = "teacher_forcing"
    horizon: int | None = None
    memories: tuple[MemorySpec, ...] = ()


@dataclass(frozen=True)
class _Wiring:
    """What the graph walk finds in a training model."""

    encoder_input: Any  # KerasTensor
    decoder_input: Any  # KerasTensor
    path: tuple[LayerCall, ...]  # the decoder path's calls, from the decoder input on
    initial_states: Mapping[str, tuple[Any, ...] | None]  # decoder layer -> tensors
    memories: tuple[Any, ...] = ()  # encoder tensors the decoder reads at every step
    form: SourceForm = "teacher_forcing"
    horizon: int | None = None  # the number of unrolled steps


def is_seq2seq(model: Any) -> bool:
    """Whether ``model`` looks like a seq2seq training model: several inputs and
    a recurrent layer that takes ``initial_state`` from another layer (a state
    fed straight from a model input is an ordinary input). A model that looks
    like one but does not fit is refused by :func:`split_seq2seq` with the
    reason, rather than exported as a single graph."""
    if len(model_inputs(model)) < 2:
        return False
    for call in graph_calls(model):
        if type(call.layer).__name__ in _ATTENTION:
            return True
        states = _initial_state(call)
        if states is not None and not all(is_input_tensor(state) for state in states):
            return True
    return False


def split_seq2seq(model: Any, *, start_token: int = 0) -> Seq2SeqSplit:
    """Split a functional seq2seq training model (see the module docstring).

    ``start_token`` is the token a generation starts from when the decoder reads
    tokens (one-hot or ids); it is 0 unless the model was trained with another.
    Raises :class:`ParityError` saying what was expected and what was found when
    the model does not fit."""
    wiring = _find_wiring(model)
    decoder_name = layer_name(wiring.decoder_input)
    states = _state_specs(wiring)
    memories = _memory_specs(wiring)
    encoder = _encoder_model(model, wiring, states, memories, decoder_name)
    step = _step_model(model, wiring, states, memories, decoder_name)
    step_output = layer_name(step.outputs[0])
    feedback = _feedback(wiring, decoder_name)
    start = _start_rule(wiring, feedback)
    return Seq2SeqSplit(
        encoder=encoder,
        step=step,
        states=states,
        feedback=feedback,
        start=start,
        start_token=start_token if start == "token" else None,
        encoder_input=layer_name(wiring.encoder_input),
        step_input=decoder_name,
        step_output=step_output,
        decoder_layers=tuple(c.layer.name for c in wiring.path if is_recurrent(c.layer)),
        form=wiring.form,
        horizon=wiring.horizon,
        memories=memories,
    )


# --- the graph walk ---------------------------------------------------------


def _find_wiring(model: Any) -> _Wiring:
    where = f"model {getattr(model, 'name', type(model).__name__)!r}"
    inputs = model_inputs(model)
    outputs = model_outputs(model)
    if len(inputs) != 2 or len(outputs) != 1:
        raise ParityError(
            f"{where}: expected a seq2seq training model with two inputs (encoder input, "
            f"decoder input) and one output; found {len(inputs)} input(s) and "
            f"{len(outputs)} output(s)"
        )
    steps = _unrolled_steps(outputs[0])
    path, decoder_input, memories = _decoder_path(steps[0] if steps else outputs[0], where)
    (encoder_input,) = [tensor for tensor in inputs if tensor is not decoder_input]
    recurrent = [call for call in path if is_recurrent(call.layer)]
    if not recurrent:
        raise ParityError(
            f"{where}: expected recurrent decoder layers between the decoder input "
            f"{layer_name(decoder_input)!r} and the output; found none"
        )
    initial_states = {}
    for call in recurrent:
        layer = call.layer
        _check_decoder_layer(layer, where)
        state = _initial_state(call)
        if state is not None and len(state) != len(_state_sizes(layer)):
            raise ParityError(
                f"{where}: decoder layer {layer.name!r} is called with {len(state)} initial "
                f"state tensor(s); expected one per state ({len(_state_sizes(layer))})"
            )
        initial_states[layer.name] = state
    if all(state is None for state in initial_states.values()) and not memories:
        raise ParityError(
            f"{where}: expected a decoder layer called with initial_state from the encoder; "
            f"found decoder layer(s) {', '.join(map(repr, initial_states))} all starting "
            "from zeros"
        )
    if steps:
        _check_unrolled(path, steps, where)
        return _Wiring(
            encoder_input, decoder_input, tuple(path), initial_states, (), "unrolled", len(steps)
        )
    form = "attention" if memories else "teacher_forcing"
    return _Wiring(encoder_input, decoder_input, tuple(path), initial_states, tuple(memories), form)


def _unrolled_steps(output: Any) -> list[Any] | None:
    """The per-step outputs of a decoder unrolled by hand (the first seed's
    form: one call of the decoder layers per output step, joined over time by
    ``Concatenate(axis=1)`` or a ``Lambda`` over the list), or None."""
    if is_input_tensor(output):
        return None
    call = producing_call(output)
    joiner = call.layer
    parts = list(call.inputs)
    if len(parts) < 2 or any(len(part.shape) != len(output.shape) for part in parts):
        return None
    kind = type(joiner).__name__
    along_time = False
    if kind == "Concatenate":
        along_time = joiner.axis in (1, 1 - len(output.shape))
    elif kind == "Lambda":
        lengths = [part.shape[1] for part in parts]
        along_time = None not in lengths and output.shape[1] == sum(lengths)
    return parts if along_time else None


def _check_unrolled(path: list[LayerCall], steps: list[Any], where: str) -> None:
    """Each step past the first must be the same layers called again on the
    previous step's output, every recurrent layer continuing from the states
    its previous call returned: then the step model, run N times with its
    output fed back, computes what the unrolled model computes."""
    previous = path
    for index, output in enumerate(steps[1:], start=1):
        calls_back = []
        tensor = output
        for expected in reversed(path):
            call = None if is_input_tensor(tensor) else producing_call(tensor)
            if call is None or call.layer is not expected.layer:
                found = "a model input" if call is None else repr(call.layer.name)
                raise ParityError(
                    f"{where}: looks like a decoder unrolled by hand ({len(steps)} steps joined "
                    f"over time), but step {index} reaches {found} where the first step has "
                    f"layer {expected.layer.name!r}; expected the same layers called again"
                )
            calls_back.append(call)
            tensor, _ = _sequence_argument(call)
        if tensor is not steps[index - 1]:
            raise ParityError(
                f"{where}: looks like a decoder unrolled by hand, but step {index} does not read "
                f"step {index - 1}'s output; expected each step's output fed back as the next "
                "step's input"
            )
        current = list(reversed(calls_back))
        for before, call in zip(previous, current, strict=True):
            if not is_recurrent(call.layer):
                continue
            carried = _initial_state(call) or ()
            returned = tuple(before.outputs[1:])
            if len(carried) != len(returned) or any(
                a is not b for a, b in zip(carried, returned, strict=True)
            ):
                raise ParityError(
                    f"{where}: looks like a decoder unrolled by hand, but at step {index} layer "
                    f"{call.layer.name!r} does not continue from the states its previous "
                    "call returned (return_state=True, then initial_state=those states)"
                )
        previous = current


def _decoder_path(output: Any, where: str) -> tuple[list[LayerCall], Any, list[Any]]:
    """The decoder's layer calls from the decoder input to ``output``, in the
    order they run, the decoder input, and the memories.

    The decoder input is the model input reached by following each call's
    first argument back from ``output`` (a recurrent layer's sequence, an
    attention layer's query, a merge's first part). The decoder's calls are
    those that read it, directly or not; every tensor they read that does not
    depend on it was computed by the encoder: a recurrent layer's
    ``initial_state``, or a *memory* (the sequence an attention layer attends
    to), which the step model takes as an input, the same at every step."""
    tensor = output
    while not is_input_tensor(tensor):
        tensor = _primary_argument(producing_call(tensor))
    decoder_input = tensor
    reads_decoder: dict[int, bool] = {}

    def depends(value: Any) -> bool:
        key = id(value)
        if key not in reads_decoder:
            if value is decoder_input:
                reads_decoder[key] = True
            elif is_input_tensor(value):
                reads_decoder[key] = False
            else:
                reads_decoder[key] = any(map(depends, producing_call(value).inputs))
        return reads_decoder[key]

    calls: list[LayerCall] = []
    memories: list[Any] = []
    seen: set[LayerCall] = set()

    def visit(value: Any) -> None:
        if value is decoder_input:
            return
        if not depends(value):
            if not any(value is memory for memory in memories):
                memories.append(value)
            return
        layer, tensor_index = producer(value)
        call = producing_call(value)
        if is_recurrent(layer) and tensor_index != 0:
            raise ParityError(
                f"{where}: the decoder reads the state of {layer.name!r}, which holds its "
                "last step only; expected its sequence output"
            )
        if call in seen:
            return
        seen.add(call)
        initial = _initial_state(call) or ()
        _check_decoder_call(call, initial, depends, where)
        for tensor in call.inputs:
            if not any(tensor is state for state in initial):
                visit(tensor)
        calls.append(call)

    visit(output)
    return calls, decoder_input, memories


def _primary_argument(call: LayerCall) -> Any:
    """A call's first tensor argument: a recurrent layer's sequence, an
    attention layer's query, a merge's first part."""
    tensors = _tensor_arguments(call)
    if not tensors:
        raise ParityError(f"layer {call.layer.name!r} is called on no tensor")
    return tensors[0]


def _tensor_arguments(call: LayerCall) -> list[Any]:
    """A call's tensor arguments in order (positional, then by keyword), each
    place counted, even where one tensor fills two (``[x, x]``)."""
    import keras

    return [
        value for value in keras.tree.flatten((call.args, call.kwargs)) if is_keras_tensor(value)
    ]


def _check_decoder_call(
    call: LayerCall, initial: tuple[Any, ...], depends: Any, where: str
) -> None:
    """A call on the decoder's side must compute each step from that step alone
    (and from the encoder's results): forward recurrent layers, per-step
    layers, merges of per-step values, attention whose query is the decoder's
    and whose keys and values are the encoder's."""
    layer = call.layer
    kind = type(layer).__name__
    if kind == "Bidirectional":
        raise ParityError(
            f"{where}: decoder layer {layer.name!r} is Bidirectional, so it reads later "
            "steps and cannot run one step at a time; expected forward recurrent layers"
        )
    if is_recurrent(layer):
        if any(depends(state) for state in initial):
            raise ParityError(
                f"{where}: the initial state of decoder layer {layer.name!r} depends on the "
                "decoder input; expected it computed from the encoder input alone"
            )
        return
    if kind in _PER_STEP:
        return
    if kind in _MERGES:
        parts = _tensor_arguments(call)
        from_encoder = [part for part in parts if not depends(part)]
        if from_encoder:
            raise ParityError(
                f"{where}: layer {layer.name!r} ({kind}) on the decoder path combines "
                f"{len(parts)} tensors, {len(from_encoder)} of them computed by the encoder "
                "alone; expected merges of the decoder's own per-step values (the encoder "
                "reaches the decoder through initial_state or attention)"
            )
        return
    if kind in _ATTENTION:
        kwargs = call.kwargs
        if kwargs.get("use_causal_mask") or kwargs.get("attention_mask") is not None:
            raise ParityError(
                f"{where}: attention layer {layer.name!r} masks across the decoder's steps; "
                "expected attention from each decoder step to the encoder's sequence"
            )
        query, *attended = _tensor_arguments(call)
        if not depends(query) or any(map(depends, attended)):
            raise ParityError(
                f"{where}: attention layer {layer.name!r} attends to the decoder's own "
                "sequence (self-attention reads later steps); expected the decoder's query "
                "over the encoder's sequence"
            )
        return
    raise ParityError(
        f"{where}: layer {layer.name!r} ({kind}) is on the decoder path; expected "
        "recurrent layers, layers that act on each step alone (Dense, Dropout, "
        "Embedding, TimeDistributed, ...), merges (Concatenate, Add, ...) and attention "
        "over the encoder's sequence (Attention, AdditiveAttention, MultiHeadAttention)"
    )


def _sequence_argument(call: LayerCall) -> tuple[Any, int]:
    """The one tensor a layer of the decoder path reads besides its initial
    states, or None, and how many it reads."""
    initial = _initial_state(call) or ()
    tensors = [t for t in call.inputs if not any(t is s for s in initial)]
    return (tensors[0] if len(tensors) == 1 else None), len(tensors)


def _initial_state(call: LayerCall) -> tuple[Any, ...] | None:
    """The tensors a layer was called with as ``initial_state`` (by keyword, or
    second positional argument of a recurrent layer), or None."""
    import keras

    state = call.kwargs.get("initial_state")
    if state is None and is_recurrent(call.layer) and len(call.args) > 1:
        state = call.args[1]
    if state is None:
        return None
    return tuple(keras.tree.flatten(state))


def _check_decoder_layer(layer: Any, where: str) -> None:
    problems = [
        (not layer.return_sequences, "returns only its last step (return_sequences=False)"),
        (layer.go_backwards, "runs backwards in time (go_backwards=True)"),
        (layer.stateful, "is stateful"),
    ]
    for bad, what in problems:
        if bad:
            raise ParityError(
                f"{where}: decoder layer {layer.name!r} {what}; expected a layer that returns "
                "one output per step, forwards in time"
            )
    _state_sizes(layer, where)


def _state_sizes(layer: Any, where: str = "") -> tuple[int, ...]:
    size = layer.cell.state_size
    sizes = (size,) if isinstance(size, int) else tuple(size)
    if not all(isinstance(s, int) for s in sizes):
        raise ParityError(
            f"{where}: decoder layer {layer.name!r} has nested states {size!r}; expected "
            "one vector per state"
        )
    return sizes


def _state_kinds(layer: Any) -> tuple[str, ...]:
    count = len(_state_sizes(layer))
    if count == 1:
        return ("h",)
    if count == 2:
        return ("h", "c")
    return tuple(f"s{i}" for i in range(count))


# --- the two models ----------------------------------------------------------


def _state_specs(wiring: _Wiring) -> tuple[StateSpec, ...]:
    specs = []
    for call in wiring.path:
        layer = call.layer
        if not is_recurrent(layer):
            continue
        from_encoder = wiring.initial_states[layer.name] is not None
        for kind, size in zip(_state_kinds(layer), _state_sizes(layer), strict=True):
            name = f"{layer.name}_{kind}"
            specs.append(
                StateSpec(
                    name=name,
                    layer=layer.name,
                    kind=kind,
                    size=int(size),
                    step_input=name,
                    step_output=f"{name}_next",
                    init="encoder" if from_encoder else "zeros",
                    encoder_output=f"{name}_init" if from_encoder else None,
                )
            )
    return tuple(specs)


def _memory_specs(wiring: _Wiring) -> tuple[MemorySpec, ...]:
    specs = []
    for tensor in wiring.memories:
        layer, index = producer(tensor)
        name = layer.name if index == 0 else f"{layer.name}_{index}"
        specs.append(MemorySpec(name, f"{name}_memory", f"{name}_memory"))
    return tuple(specs)


def _encoder_model(
    model: Any,
    wiring: _Wiring,
    states: tuple[StateSpec, ...],
    memories: tuple[MemorySpec, ...],
    decoder_name: str,
) -> keras.Model:
    import keras

    tensors = [t for layer in wiring.initial_states.values() if layer is not None for t in layer]
    named = [spec for spec in states if spec.init == "encoder"]
    outputs = [
        keras.layers.Identity(name=spec.encoder_output)(tensor)
        for spec, tensor in zip(named, tensors, strict=True)
    ]
    outputs += [
        keras.layers.Identity(name=spec.encoder_output)(tensor)
        for spec, tensor in zip(memories, wiring.memories, strict=True)
    ]
    try:
        return keras.Model(wiring.encoder_input, outputs, name=f"{model.name}_encoder")
    except ValueError:
        raise ParityError(
            f"model {model.name!r}: the initial states of the decoder layers depend on the "
            f"decoder input {decoder_name!r}; expected them computed from the encoder input "
            f"{layer_name(wiring.encoder_input)!r} alone"
        ) from None


def _step_model(
    model: Any,
    wiring: _Wiring,
    states: tuple[StateSpec, ...],
    memories: tuple[MemorySpec, ...],
    decoder_name: str,
) -> keras.Model:
    """The decoder's calls once more, on one step, with every recurrent layer's
    states and every memory as explicit inputs. A decoder layer may have been
    built without ``return_state``, so each runs as a new ``RNN`` over the same
    cell object; every other layer is the trained layer itself, called again:
    the weights are the trained ones, and shared."""
    import keras

    decoder_input = wiring.decoder_input
    step_input = keras.Input(
        shape=(1, *decoder_input.shape[2:]), dtype=decoder_input.dtype, name=decoder_name
    )
    state_inputs = {
        spec.name: keras.Input(shape=(spec.size,), dtype="float32", name=spec.step_input)
        for spec in states
    }
    memory_inputs = [
        keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=spec.step_input)
        for spec, tensor in zip(memories, wiring.memories, strict=True)
    ]
    tensors = {id(decoder_input): step_input}
    tensors.update(
        {id(tensor): x for tensor, x in zip(wiring.memories, memory_inputs, strict=True)}
    )
    new_states = []
    for call in wiring.path:
        layer = call.layer
        if not is_recurrent(layer):
            args, kwargs = call.substituted(tensors)
            kwargs.pop("mask", None)
            outputs = keras.tree.flatten(layer(*args, **kwargs))
            tensors.update({id(t): y for t, y in zip(call.outputs, outputs, strict=False)})
            continue
        mine = [spec for spec in states if spec.layer == layer.name]
        one_step = keras.layers.RNN(
            layer.cell, return_sequences=True, return_state=True, name=layer.name
        )
        sequence = tensors[id(_sequence_argument(call)[0])]
        y, *layer_states = one_step(sequence, initial_state=[state_inputs[s.name] for s in mine])
        tensors[id(call.outputs[0])] = y
        new_states += [
            keras.layers.Identity(name=spec.step_output)(tensor)
            for spec, tensor in zip(mine, layer_states, strict=True)
        ]
    output = tensors[id(wiring.path[-1].outputs[0])]
    return keras.Model(
        [step_input, *state_inputs.values(), *memory_inputs],
        [output, *new_states],
        name=f"{model.name}_step",
    )


# --- feedback and start rules -----------------------------------------------


def _feedback(wiring: _Wiring, decoder_name: str) -> Feedback:
    decoder_input = wiring.decoder_input
    last = wiring.path[-1].outputs[0]
    out_size = last.shape[-1]
    softmax = _ends_in_softmax(wiring.path)
    tokens = len(decoder_input.shape) == 2
    in_size = None if tokens else decoder_input.shape[-1]
    if softmax and tokens:
        return "argmax_token"
    if softmax and in_size == out_size:
        return "argmax_onehot"
    if not softmax and not tokens and in_size == out_size:
        return "identity"
    found = "token ids" if tokens else f"{in_size} features"
    produced = f"a softmax over {out_size}" if softmax else f"{out_size} features"
    raise ParityError(
        f"decoder input {decoder_name!r}: cannot feed a step's output back: the step "
        f"produces {produced} and the decoder reads {found}; expected the same features "
        "(fed back as they are), or a softmax fed back as its argmax token"
    )


def _ends_in_softmax(path: tuple[LayerCall, ...]) -> bool:
    for call in reversed(path):
        layer = call.layer
        kind = type(layer).__name__
        if kind in _TRANSPARENT:
            continue
        if kind == "TimeDistributed":
            layer, kind = layer.layer, type(layer.layer).__name__
        if kind == "Softmax":
            return True
        activation = getattr(layer, "activation", None)
        return getattr(activation, "__name__", None) == "softmax"
    return False


def _start_rule(wiring: _Wiring, feedback: str) -> str:
    if feedback != "identity":
        return "token"
    encoder_shape = wiring.encoder_input.shape
    same_features = len(encoder_shape) == 3 and encoder_shape[-1] == wiring.decoder_input.shape[-1]
    return "last_encoder_step" if same_features else "zeros"
