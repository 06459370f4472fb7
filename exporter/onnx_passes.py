"""Graph passes that know nothing of seq2seq: simplifying a graph, prefixing
its names, the dims shape inference finds, and one peephole for single-step
recurrent ops.

Every graph the exporter writes is simplified
(:func:`parity.exporter.convert.simplified_graph`); the measurements below are
why the generation graph needs it most.

The generation graph (:mod:`parity.exporter.loop`) runs a step graph inside an
ONNX ``Loop``, and ONNX Runtime pays for every body node at every step, so the
layout-only work tf2onnx leaves in a step graph is taken out before it
becomes the body: target shapes computed from ``Shape``, ``Gather``,
``Concat`` and ``Cast`` at every step, chains of views, Reshapes to the shape
a value already has.

That work is onnx-simplifier's (:func:`simplified`). Measured with onnx 1.23,
onnxsim 0.8.1, onnxoptimizer 0.4.2 and onnxscript 0.7.2 on ten seq2seq
bundles (the seed ``sine_seq2seq`` at the tiny preset and five more tf2onnx
exports of LSTM, GRU and SimpleRNN decoders, four hand-written toys) against
the passes this module replaced (constant target shapes with -1 for the batch,
view-chain merging, no-op Reshape removal):

- none of the three libraries changes a ``Loop`` body, with or without
  onnxsim's ``include_subgraph``: the passes must run on the step graph while
  it is a top-level graph;
- on the step graph, onnxoptimizer and onnxscript's optimizer and rewriter
  leave the symbolic-batch ``Shape`` chains alone; onnxsim folds them (it
  evaluates shapes symbolically and writes -1 for the batch) and removes the
  view chains and no-op Reshapes;
- onnxsim on the step graph plus :func:`read_state_not_sequence` gave the body
  the hand-written passes gave, node for node, on nine bundles, and 12 nodes
  rather than 17 on the tenth (the target shape of a Dense after a ReLU,
  which the hand-written folding could not work out from ONNX shape
  inference's dims); outputs
  bit for bit the same; one generation of the tiny ``sine_seq2seq`` bundle at
  batch 1 took 0.13 ms either way (``runtime.generate``, median of 600 calls,
  the two graphs interleaved).

What stays hand-written: :func:`read_state_not_sequence` (no library knows that
a one-step LSTM's ``Y`` holds the elements of its ``Y_h``), :func:`prefixed`
(a thin fix over ``onnx.compose.add_prefix_graph``), the dead-node pass
(:func:`parity.exporter.onnx_nodes.without_dead`, run after the loop's own
rewiring, which also leaves a recurrent op's unread outputs unwritten).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxsim
from onnx import compose, helper

from parity.exporter.onnx_nodes import (
    RECURRENT_OPS,
    axes_op,
    dims,
    is_view_reshape,
    readers_of,
    subgraphs,
)
from parity.runtime.errors import ParityError, quoted

__all__ = [
    "SKIPPED_FUSIONS",
    "inferred_dims",
    "prefixed",
    "read_state_not_sequence",
    "rename_reads",
    "simplified",
]

# onnxsim's fusions that change how a value is computed (a MatMul and an Add
# become one Gemm, a BatchNormalization folds into a Conv, ...): each rounds
# differently, and the generation graph must compute what the step graph was
# checked to compute. Its eliminations and constant folding keep every value.
SKIPPED_FUSIONS = (
    "fuse_add_bias_into_conv",
    "fuse_bn_into_conv",
    "fuse_consecutive_log_softmax",
    "fuse_matmul_add_bias_into_gemm",
    "fuse_pad_into_conv",
    "fuse_pad_into_pool",
    "fuse_qkv",
    "fuse_transpose_into_gemm",
    "eliminate_nop_monotone_argmax",
)


def simplified(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` simplified by onnx-simplifier, its inputs and outputs kept:
    a Reshape's target shape computed from ``Shape`` becomes a constant (with
    -1 for a symbolic dim), a Reshape reads past the views before it, a Reshape
    to the shape its input has goes, and what depends on initializers alone is
    folded into initializers. The fusions in :data:`SKIPPED_FUSIONS` are not
    made, so every value is computed as before. ``model`` is left as it is.
    Raises :class:`ParityError` with onnx-simplifier's reason when it fails."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        result, _ = onnxsim.simplify(copy, skipped_optimizers=list(SKIPPED_FUSIONS))
    except Exception as exc:  # onnxsim raises bare RuntimeError/ValueError/onnx errors
        reason = quoted(exc)
        raise ParityError(
            f"onnx-simplifier cannot simplify graph {model.graph.name!r}: {reason}"
        ) from None
    return result


def prefixed(graph: onnx.GraphProto, prefix: str, *, rename_inputs: bool = True) -> onnx.GraphProto:
    """A copy of ``graph`` with ``prefix`` before every value and node name,
    inside subgraphs too, the inputs' names kept unless ``rename_inputs``;
    empty names (absent optional inputs) stay empty.

    ``onnx.compose.add_prefix_graph`` does this but for one case (onnx 1.23):
    it maps the initializers' names only after walking the subgraphs, so a
    subgraph that reads an initializer of the graph around it (a name is
    visible in every graph inside the one that makes it) would read the old
    name. The initializers' names are handed to it mapped already."""
    initializers = [tensor.name for tensor in graph.initializer]
    for sparse in graph.sparse_initializer:
        initializers += [sparse.values.name, sparse.indices.name]
    inputs = set() if rename_inputs else {value.name for value in graph.input}
    name_map = {name: prefix + name for name in initializers if name and name not in inputs}
    return compose.add_prefix_graph(graph, prefix, rename_inputs=rename_inputs, name_map=name_map)


def inferred_dims(
    graph: onnx.GraphProto,
    opsets: list[onnx.OperatorSetIdProto],
    functions: list[onnx.FunctionProto],
) -> dict[str, list[int | None]]:
    """The dims of ``graph``'s values, from ONNX shape inference under
    ``opsets`` with the model-local ``functions``: an int where fixed, None
    where unknown (a symbolic dim such as the batch is unknown: the passes
    rely only on fixed dims). Values whose rank is unknown are left out; when
    inference fails, only the graph's own value infos count."""
    model = helper.make_model(graph, opset_imports=opsets, functions=functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, RuntimeError):
        inferred = graph
    known = {}
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            fixed = dims(tensor.shape.dim)
            known[value.name] = [dim if isinstance(dim, int) else None for dim in fixed]
    return known


def read_state_not_sequence(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    known: dict[str, list[int | None]],
    keep: set[str],
) -> None:
    """Rewire, in place, what reads a single-step recurrent op's ``Y`` to read
    its ``Y_h``.

    A one-direction LSTM, GRU or RNN that runs one time step returns the same
    elements twice: ``Y`` (1, 1, batch, hidden) and ``Y_h`` (1, batch,
    hidden). A Reshape of ``Y`` to a constant shape reads ``Y_h`` instead, and
    what reads a Squeeze of ``Y``'s axis 0 or 1 (which is ``Y_h``) reads
    ``Y_h`` itself, unless that Squeeze's output is in ``keep``. ``Y_h``
    often has the layout the next stacked layer takes already, and ``Y``,
    once nothing reads it, need not be written (see
    :func:`parity.exporter.onnx_nodes.without_dead`). ``constants`` holds the
    values of the initializers, ``known`` the dims of :func:`inferred_dims`."""
    readers = readers_of(nodes)
    rename: dict[str, str] = {}
    for node in nodes:
        if not _single_step_rnn(node, known) or len(node.output) < 2 or not node.output[1]:
            continue
        for reader in readers.get(node.output[0], []):
            if reader.input[0] != node.output[0]:
                continue
            if is_view_reshape(reader, constants):
                reader.input[0] = node.output[1]
            elif _squeezes_leading(reader, constants) and reader.output[0] not in keep:
                rename[reader.output[0]] = node.output[1]
    rename_reads(nodes, rename)


def rename_reads(nodes: list[onnx.NodeProto], rename: dict[str, str]) -> None:
    """Map, in place, the names that ``nodes`` read by ``rename``, inside
    subgraphs too (a subgraph's outputs may name a value of a graph around
    it). What the nodes write keeps its name."""
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for graph in subgraphs(attribute):
                rename_reads(list(graph.node), rename)
                for value in graph.output:
                    value.name = rename.get(value.name, value.name)


def _single_step_rnn(node: onnx.NodeProto, known: dict[str, list[int | None]]) -> bool:
    """A one-direction recurrent op in the time-major layout, without
    sequence lengths, whose input has one time step."""
    attributes = {attr.name: attr for attr in node.attribute}
    direction = attributes["direction"].s if "direction" in attributes else b"forward"
    layout = attributes["layout"].i if "layout" in attributes else 0
    return (
        node.op_type in RECURRENT_OPS
        and node.domain in ("", "ai.onnx")
        and direction != b"bidirectional"
        and layout == 0
        and (len(node.input) < 5 or not node.input[4])
        and known.get(node.input[0], [None])[0] == 1
    )


def _squeezes_leading(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """A Squeeze of axis 0 or 1 alone: from (1, 1, b, h) both give (1, b, h)."""
    return axes_op(node, "Squeeze", constants) and [
        int(a) for a in np.atleast_1d(constants[node.input[1]])
    ] in ([0], [1])
