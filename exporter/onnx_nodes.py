"""Reading and pruning lists of ONNX nodes, shared by the graph rewrites.

Who reads a value (subgraphs included), which initializers a set of nodes
still reads, which nodes are dead once a rewrite has rewired the rest, which
are views with a constant shape, and a tensor type's dims.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx

# Nodes that give a new value at every run: they stay in the body even when
# their inputs are constants.
RANDOM_OPS = frozenset(
    {
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
    }
)


# Recurrent ops whose optional outputs may be left unwritten.
RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def without_dead(nodes: list[onnx.NodeProto], keep: set[str]) -> list[onnx.NodeProto]:
    """Drop the nodes none of whose outputs is read or kept, repeatedly; an
    optional output of a recurrent op that nothing reads is left unwritten."""
    while True:
        readers = readers_of(nodes)
        live = [
            node
            for node in nodes
            if any(name in keep or name in readers for name in node.output if name)
            or node.op_type in RANDOM_OPS
            or not node.output
        ]
        for node in live:
            if node.op_type in RECURRENT_OPS and node.domain in ("", "ai.onnx"):
                node.output[:] = [
                    name if name in keep or name in readers else "" for name in node.output
                ]
        if len(live) == len(nodes):
            return live
        nodes = live


def subgraphs(attribute: onnx.AttributeProto) -> list[onnx.GraphProto]:
    graphs = list(attribute.graphs)
    if attribute.HasField("g"):
        graphs.insert(0, attribute.g)
    return graphs


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Every name read inside ``node``'s subgraphs (a superset of the names it
    reads from the graphs around it)."""
    names: set[str] = set()
    for attribute in node.attribute:
        for graph in subgraphs(attribute):
            for inner in graph.node:
                names.update(inner.input)
                names |= _subgraph_reads(inner)
    return names


def readers_of(nodes: Iterable[onnx.NodeProto]) -> dict[str, list[onnx.NodeProto]]:
    """For each name, the nodes that read it, directly or in a subgraph."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in {*node.input, *_subgraph_reads(node)} - {""}:
            found.setdefault(name, []).append(node)
    return found


def read_by(
    nodes: Sequence[onnx.NodeProto], *groups: Iterable[onnx.TensorProto]
) -> list[onnx.TensorProto]:
    """The initializers that ``nodes`` (or their subgraphs) read: the step
    initializers that the rewritten nodes no longer need are left out."""
    names = {name for node in nodes for name in (*node.input, *_subgraph_reads(node))}
    return [tensor for group in groups for tensor in group if tensor.name in names]


def dims(shape: Iterable[onnx.TensorShapeProto.Dimension]) -> list[int | str | None]:
    """A tensor type's dims: ints where fixed, names where symbolic, None
    where unknown."""
    result: list[int | str | None] = []
    for dim in shape:
        if dim.HasField("dim_value"):
            result.append(dim.dim_value)
        elif dim.HasField("dim_param"):
            result.append(dim.dim_param)
        else:
            result.append(None)
    return result


def axes_op(node: onnx.NodeProto | None, op_type: str, constants: Mapping[str, np.ndarray]) -> bool:
    """Whether ``node`` is ``op_type`` (Squeeze, Unsqueeze, Reshape) of the
    default domain whose second input (the axes or the shape) is one of
    ``constants``."""
    return (
        node is not None
        and node.op_type == op_type
        and node.domain in ("", "ai.onnx")
        and len(node.input) == 2
        and node.input[1] in constants
    )


def is_view_reshape(node: onnx.NodeProto | None, constants: Mapping[str, np.ndarray]) -> bool:
    """Whether ``node`` is a Reshape to a constant shape that depends on
    nothing but the element count: no 0 (copy an input dim), so the same
    elements give the same result whatever layout they come in."""
    return axes_op(node, "Reshape", constants) and 0 not in constants[node.input[1]]
