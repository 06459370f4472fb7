"""Reading Keras 3's functional graph: the one place that touches its private
attributes (``_keras_history``, ``_inbound_nodes``, ``_nodes_by_depth``).

Keras exposes no public API for walking a functional model's layer calls.
Every graph walk in parity (the seq2seq split, the fused-export form check,
mask discovery, output naming, FLOP counting) goes through these functions,
so that a change in Keras' internals is met in this module alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def is_keras_tensor(value: Any) -> bool:
    """Whether ``value`` is a symbolic tensor of a functional graph."""
    return hasattr(value, "_keras_history")


def producer(tensor: Any) -> tuple[Any, int, int]:
    """``(layer, node_index, tensor_index)``: the layer call that made ``tensor``
    and which of that call's outputs it is."""
    history = tensor._keras_history
    return history.operation, history.node_index, history.tensor_index


def producing_node(tensor: Any) -> Any:
    """The node (one call of a layer) whose output ``tensor`` is."""
    layer, node_index, _ = producer(tensor)
    return layer._inbound_nodes[node_index]


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


def calls(layer: Any, model: Any = None) -> list[Any]:
    """The nodes of ``layer``: one per call.

    Args:
        layer: a Keras layer.
        model: when given, only the calls that are part of ``model``'s graph
            (a layer loaded from a file, or wrapped into another model, also
            has calls Keras made while building it).
    """
    nodes = list(getattr(layer, "_inbound_nodes", ()))
    if model is None:
        return nodes
    mine = {id(node) for node in graph_nodes(model)}
    return [node for node in nodes if id(node) in mine]


def nodes_by_depth(model: Any) -> dict[int, list[Any]] | None:
    """A functional model's nodes grouped by depth (0 at the outputs), or None
    for a model that is not functional."""
    return getattr(model, "_nodes_by_depth", None)


def model_inputs(model: Any) -> list[Any]:
    """A model's input tensors as a list, whatever structure it was built with."""
    return as_list(getattr(model, "inputs", None) or [])


def model_outputs(model: Any) -> list[Any]:
    """A model's output tensors as a list, whatever structure it was built with."""
    return as_list(getattr(model, "outputs", None) or [])


def graph_nodes(model: Any) -> list[Any]:
    """Every node of ``model``'s functional graph, found from its outputs."""
    seen: dict[int, Any] = {}
    pending = model_outputs(model)
    while pending:
        tensor = pending.pop()
        if is_input_tensor(tensor):
            continue
        node = producing_node(tensor)
        if id(node) not in seen:
            seen[id(node)] = node
            pending.extend(node.input_tensors)
    return list(seen.values())


def walk_by_depth(model: Any) -> Iterator[Any]:
    """A functional model's nodes from its inputs to its outputs."""
    by_depth = nodes_by_depth(model) or {}
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: a dict's values, a list or tuple, or one item."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]
