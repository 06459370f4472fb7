"""Reading and pruning lists of ONNX nodes, shared by the graph rewrites.

Who reads a value (subgraphs included), which initializers a set of nodes
still reads, and which nodes are dead once a rewrite has rewired the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
