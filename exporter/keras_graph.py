"""The one adapter over Keras 3's functional graph: the only module that reads
Keras' private attributes (``_keras_history``, ``_inbound_nodes``,
``_nodes_by_depth``, ``_flatten_layers``) and its ``Node`` objects.

Keras exposes no public API for walking a functional model's layer calls.
Every graph walk in parity (the seq2seq split, the fused-export form check,
mask discovery, output naming, FLOP counting) reads parity's own records of
the calls (:class:`LayerCall`), every question of "which layers" and "is it
recurrent" is answered here, and every copy of a model with some layers
swapped is made by :func:`rebuilt` (or, with another signature, by
:func:`replayed`), so that a change in Keras' internals is met in this module
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parity.runtime.errors import ParityError


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer (or of a Keras op such as a mask's ``NotEqual``) in
    a functional graph. Two records of the same call are equal.

    ``args`` and ``kwargs`` are the call's arguments with its tensors in place;
    ``inputs`` are those tensors in order (positional, then by keyword; a mask
    passed along by Keras among them), ``outputs`` the tensors it returned."""

    layer: Any = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    kwargs: Mapping[str, Any] = field(compare=False)
    inputs: tuple[Any, ...] = field(compare=False)
    outputs: tuple[Any, ...] = field(compare=False)
    _node: Any = field(repr=False)  # Keras' record of the call, read here alone: the identity

    def substituted(self, tensors: Mapping[int, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's ``(args, kwargs)`` with each tensor replaced by its
        substitute, to call the layer again on other tensors.

        Args:
            tensors: substitutes by ``id`` of the tensor they replace, one for
                each tensor the call reads; a mask that Keras passed along and
                that has none becomes ``None`` (the new call computes it again).
        """
        args, kwargs = self._node.arguments.fill_in(tensors)
        return tuple(args), dict(kwargs)


def _record(node: Any) -> LayerCall:
    return LayerCall(
        layer=node.operation,
        args=tuple(node.arguments.args),
        kwargs=dict(node.arguments.kwargs),
        inputs=tuple(node.input_tensors),
        outputs=tuple(node.outputs),
        _node=node,
    )


def is_keras_tensor(value: Any) -> bool:
    """Whether ``value`` is a symbolic tensor of a functional graph."""
    return hasattr(value, "_keras_history")


def producer(tensor: Any) -> tuple[Any, int]:
    """``(layer, index)``: the layer whose call made ``tensor``, and which of
    that call's outputs it is."""
    history = tensor._keras_history
    return history.operation, history.tensor_index


def producing_call(tensor: Any) -> LayerCall:
    """The layer call whose output ``tensor`` is."""
    history = tensor._keras_history
    return _record(history.operation._inbound_nodes[history.node_index])


def layer_name(tensor: Any) -> str:
    """The name of the layer (or Input) that produced ``tensor``: the name its
    graph input or output gets in ONNX."""
    return producer(tensor)[0].name


def input_names(model: Any) -> list[str]:
    """The names of a model's inputs: the names of their ``InputLayer``s, which
    are the names given to ``keras.Input`` (a ``Sequential`` model's unnamed
    input gets its layer's name, ``input_layer``, rather than an internal
    tensor name)."""
    return [layer_name(tensor) for tensor in model_inputs(model)]


def is_input_tensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a model input (made by an ``InputLayer``)."""
    import keras

    return isinstance(producer(tensor)[0], keras.layers.InputLayer)


def calls(layer: Any, model: Any = None) -> list[LayerCall]:
    """The calls of ``layer``, in the order they were made.

    Args:
        layer: a Keras layer.
        model: when given, only the calls that are part of ``model``'s graph
            (a layer loaded from a file, or wrapped into another model, also
            has calls Keras made while building it).
    """
    nodes = list(getattr(layer, "_inbound_nodes", ()))
    if model is not None:
        mine = set(graph_calls(model))
        return [call for call in map(_record, nodes) if call in mine]
    return [_record(node) for node in nodes]


def is_functional(model: Any) -> bool:
    """Whether ``model`` is a functional model, whose calls :func:`calls_in_order`
    walks (a ``Sequential`` model is not: wrap it as one first)."""
    return getattr(model, "_nodes_by_depth", None) is not None


def calls_in_order(model: Any) -> list[LayerCall]:
    """A functional model's calls from its inputs to its outputs, its
    ``InputLayer``s' and Keras' ops' (a mask's) too."""
    by_depth = model._nodes_by_depth
    return [_record(node) for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


@dataclass(frozen=True)
class LayerOutput:
    """One output of one layer call of a functional graph: ``layer``'s call
    returned ``tensor`` as its ``index``-th output (1, 2, ...: a recurrent
    layer's states)."""

    layer: Any
    index: int
    tensor: Any


def layer_outputs(model: Any) -> list[LayerOutput]:
    """Every output of every layer call of a functional model, in the order the
    calls are made (its ``InputLayer``s and Keras' ops, such as a mask's
    ``NotEqual``, left out: they are no layer of the user's)."""
    import keras

    return [
        LayerOutput(call.layer, index, tensor)
        for call in calls_in_order(model)
        if isinstance(call.layer, keras.layers.Layer)
        and not isinstance(call.layer, keras.layers.InputLayer)
        for index, tensor in enumerate(call.outputs)
    ]


def exposing(model: Any, tensors: list[Any]) -> Any:
    """A model over ``model``'s inputs and layers (shared, weights and all)
    whose outputs are ``tensors``, then ``model``'s own outputs.

    It takes ``model``'s name, so that TensorFlow traces it in the same name
    scopes as ``model`` (the names tf2onnx gives the graph's tensors).

    Args:
        model: a functional model.
        tensors: tensors of ``model``'s graph (:func:`layer_outputs`).
    """
    import keras

    return keras.Model(model_inputs(model), [*tensors, *model_outputs(model)], name=model.name)


def graph_calls(model: Any) -> list[LayerCall]:
    """Every layer call of ``model``'s functional graph, found from its
    outputs (its ``InputLayer``s left out)."""
    seen: dict[LayerCall, None] = {}
    pending = model_outputs(model)
    while pending:
        tensor = pending.pop()
        if is_input_tensor(tensor):
            continue
        call = producing_call(tensor)
        if call not in seen:
            seen[call] = None
            pending.extend(call.inputs)
    return list(seen)


def model_inputs(model: Any) -> list[Any]:
    """A model's input tensors as a list, whatever structure it was built with."""
    return as_list(getattr(model, "inputs", None) or [])


def model_outputs(model: Any) -> list[Any]:
    """A model's output tensors as a list, whatever structure it was built with."""
    return as_list(getattr(model, "outputs", None) or [])


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: a dict's values, a list or tuple, or one item."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def all_layers(layer: Any) -> list[Any]:
    """Every layer inside ``layer`` (a model, a wrapper, a recurrent layer), at
    any depth, each once: a model's layers, a ``TimeDistributed``'s or a
    ``Bidirectional``'s inner layers, a recurrent layer's cell, and theirs."""
    return list(layer._flatten_layers(include_self=False))


def is_recurrent(layer: Any) -> bool:
    """Whether ``layer`` is a recurrent layer (``LSTM``, ``GRU``, ``SimpleRNN``,
    ``RNN`` over a cell, ...): it has a ``cell`` and states. A wrapper over one
    (``Bidirectional``) is not; :func:`all_layers` finds the layers it holds."""
    import keras

    return isinstance(layer, keras.layers.RNN)


@dataclass(frozen=True)
class StandIn:
    """What :func:`rebuilt`'s ``replace`` returns for a layer called in
    another's place with weights of its own (set by the caller afterwards),
    rather than given the original's."""

    layer: Any


def rebuilt(
    model: Any,
    replace: Callable[[Any], Any],
    *,
    float_inputs: str | None = None,
    masks: bool = True,
) -> Any:
    """A copy of ``model``'s graph with some layers swapped or reconfigured;
    ``model`` itself is left as it is (unless ``replace`` keeps its layers,
    which are then called again).

    A new layer is given the weights of the layer it replaces (cast to its own
    dtypes), and then refreshes its adapted state: an adapted ``Normalization``
    normalizes by a mean it computes from its weights, which setting them
    alone leaves at the initial values.

    Args:
        model: a functional or built ``Sequential`` model (the copy is
            functional, its inputs named as the model's).
        replace: gives what the copy calls in a layer's place, for every layer
            and Keras op of the graph (a nested model too): the layer itself,
            kept and shared; a new layer, given the layer's weights; a
            :class:`StandIn`, whose layer is called with the weights it has;
            or ``None`` to drop the layer (its output is its first input).
        float_inputs: the dtype of the copy's float inputs (``"float64"``);
            ``None`` keeps each input's dtype.
        masks: ``False`` calls each layer without the mask Keras would pass
            it (a copy that takes the mask as data instead).
    """
    import keras

    model = as_functional(model)
    inputs = [
        keras.Input(
            batch_shape=tensor.shape,
            dtype=float_inputs if float_inputs and "float" in str(tensor.dtype) else tensor.dtype,
            name=layer_name(tensor),
        )
        for tensor in model_inputs(model)
    ]
    copies: list[tuple[Any, Any]] = []

    def clone(layer: Any) -> Any:
        chosen = replace(layer)
        if isinstance(chosen, StandIn):
            return chosen.layer
        if chosen is not None and chosen is not layer:
            copies.append((layer, chosen))
        return chosen

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if layer is None:
            return args[0]
        if not masks:
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    copy = keras.models.clone_model(
        model,
        input_tensors=keras.tree.pack_sequence_as(model.input, inputs),
        clone_function=clone,
        call_function=call,
    )
    for layer, new in copies:
        if isinstance(new, keras.layers.Layer):
            weights = layer.get_weights()
            new.set_weights(
                [np.asarray(w, v.dtype) for w, v in zip(weights, new.weights, strict=True)]
            )
            for inner in (new, *all_layers(new)):
                if hasattr(inner, "adapt"):  # Normalization: the mean from its weights
                    inner.finalize_state()
    return copy


def replayed(
    model: Any,
    inputs: list[Any],
    call: Callable[[LayerCall, tuple[Any, ...], dict[str, Any]], Any],
) -> list[Any]:
    """``model``'s graph called again from other input tensors, each call made
    by ``call``: a new graph over the model's layers whose signature may differ
    from the model's (:func:`rebuilt` keeps the model's inputs and outputs).
    The stream export calls a recurrent layer's cell from state inputs of its
    own this way. Nothing of ``model`` changes but its layers' call records.

    Args:
        model: a functional model.
        inputs: one new symbolic tensor (``keras.Input``) per model input, in order.
        call: given each call of a layer or Keras op (from the inputs on,
            ``InputLayer``s left out) and its arguments with the new tensors
            in place, returns what that call returns on them (``call.layer(*args,
            **kwargs)`` to call it again as it was).

    Returns:
        The new tensors in the place of the model's outputs, in order.
    """
    import keras

    tensors = {id(old): new for old, new in zip(model_inputs(model), inputs, strict=True)}
    for record in calls_in_order(model):
        if isinstance(record.layer, keras.layers.InputLayer):
            continue
        args, kwargs = record.substituted(tensors)
        outputs = keras.tree.flatten(call(record, args, kwargs))
        for old, new in zip(record.outputs, outputs, strict=False):
            tensors[id(old)] = new
    return [tensors[id(tensor)] for tensor in model_outputs(model)]


def _one_or_all(tensors: list[Any]) -> Any:
    return tensors[0] if len(tensors) == 1 else tensors


def as_functional(model: Any) -> Any:
    """``model`` as a functional model over the same layers.

    tf2onnx 1.17's ``from_keras`` fails on every Keras 3 ``Sequential`` model
    (``KeyError: 'keras_tensor_N'``: it takes output names from Keras'
    internal tensor names), while the same layers wrapped as a functional
    model convert. The wrapper shares the layers and their weights and adds
    no layer call, so everything read from the graph (masks, fusable forms,
    names) is the same.

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
    stateful = any(getattr(layer, "stateful", False) for layer in all_layers(model))
    if len(inputs) == 1 and isinstance(inputs[0].shape[0], int) and not stateful:
        # Built by its first call (``predict``, ``fit``), a Sequential model
        # records that call's batch size, which no layer needs: called anew on
        # an input of any batch size, the same layers compute row by row.
        tensor = inputs[0]
        x = keras.Input(batch_shape=(None, *tensor.shape[1:]), dtype=tensor.dtype,
                        name=layer_name(tensor))  # fmt: skip
        y = x
        for layer in model.layers:
            y = layer(y)
        return keras.Model(x, y, name=model.name)
    return keras.Model(_one_or_all(inputs), _one_or_all(outputs), name=model.name)
