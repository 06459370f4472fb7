"""Which graph inputs are token ids, read from the converted graph itself.

An input that reaches an embedding lookup holds token ids, whatever its
dtype: drawn as floats in (-1, 1) it would be truncated to id 0 everywhere,
and every check would pass on a constant. Keras says so for an ``Embedding``
that reads an input directly, but not through a wrapper
(``TimeDistributed(Embedding)``), a cast or a reshape, and a SavedModel has
no layers at all. The ONNX graph tf2onnx writes has the lookup in every
case: a ``Gather`` of a constant table whose indices come from the input
within a few ops (a cast, a reshape, and the ``Less``/``Where`` that Keras'
``take`` writes to wrap negative ids). The table's first dim is the
vocabulary.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# How many ops may stand between an input and the lookup that reads it.
MAX_DEPTH = 8
# Ops that a token id goes through on its way to a lookup: casts, moves, and
# the comparison and selection that wrap negative ids.
_ON_THE_WAY = frozenset(
    {"Cast", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Flatten", "Expand",
     "Less", "Not", "Where", "Add", "Mul", "Sub", "Clip", "Max", "Min"}
)  # fmt: skip


def token_vocabularies(proto: Any) -> dict[str, int]:
    """The graph inputs whose values are the indices of a ``Gather`` over a
    constant table, each with the smallest such table's number of rows.

    Args:
        proto: an ONNX model (its main graph is read).
    """
    graph = proto.graph
    tables = {t.name: tuple(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    tables[node.output[0]] = tuple(attribute.t.dims)
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    found = {}
    for graph_input in graph.input:
        vocabularies = []
        pending, seen = [(graph_input.name, 0)], set()
        while pending:
            value, depth = pending.pop()
            if value in seen or depth > MAX_DEPTH:
                continue
            seen.add(value)
            for node in consumers.get(value, ()):
                if node.op_type in _ON_THE_WAY:
                    pending.extend((output, depth + 1) for output in node.output)
                elif (
                    node.op_type == "Gather"
                    and len(node.input) > 1
                    and node.input[1] == value
                    and len(tables.get(node.input[0], ())) >= 1
                    and _axis(node) == 0
                ):
                    vocabularies.append(int(tables[node.input[0]][0]))
        if vocabularies:
            found[graph_input.name] = min(vocabularies)
    return found


def _axis(node: Any) -> int:
    for attribute in node.attribute:
        if attribute.name == "axis":
            return int(attribute.i)
    return 0
