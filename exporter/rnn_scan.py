"""ONNX's ``RNN`` op rewritten as a ``Scan`` of primitive nodes.

ONNX Runtime's CPU kernel for ``RNN`` is slow: on the masked classifier's
shapes (128 units, 20 features, 45 valid steps) it takes 17.5 ms at batch
256 where the same recurrence as this ``Scan`` takes 5.3 ms, and at batch 1
102 against 80 us. So a SimpleRNN is written as the op
(``exporter.rnn_weights`` is its layout) and then as this scan, which
computes what the op computes, its ``sequence_lens`` included:

- the input projection of every step is one product before the scan,
  ``X W^T + (Wb + Rb)``, and each step adds ``h R^T`` to its row
  (``Gemm``) and applies the activation: Keras' own order of sums,
  ``(x kernel + bias) + h recurrent_kernel``;
- with ``sequence_lens``, ``Y`` has zeros past each row's length and
  ``Y_h`` is the row's state at its last valid step, as the op has them;
  the scan itself runs every row to the end and holds nothing (holding a
  row's state at its padded steps costs two more nodes a step, 30% at
  batch 1);
- ``Y`` (time, 1, batch, hidden) is written only where the op's ``Y`` is read.

A ``Scan`` rather than a ``Loop``: the projected input is the scan's input,
which graph rewriters such as onnx-simplifier follow; a ``Loop`` body would
read it from the outer graph, which their fusions do not rewire (a trained
SimpleRNN's graph failed to simplify), and would need a ``Gather`` a step.
The ``Scan`` node's ``doc_string`` says what it replaces: ``RNN`` or ``RNN
with sequence_lens``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from parity.runtime.errors import ParityError

# The scan body's graph name, which marks the scan as an RNN op's.
BODY = "parity_rnn_step"

# ONNX RNN activations with an ONNX op of the same name; attribute names of
# those that take alpha/beta, in the order ONNX consumes ``activation_alpha``.
ACTIVATION_PARAMETERS = {"Tanh": (), "Relu": (), "Sigmoid": (), "HardSigmoid": ("alpha", "beta")}


def rnn_as_scan(graph: onnx.GraphProto, node: onnx.NodeProto) -> onnx.NodeProto:
    """Replace ``node``, a forward ``RNN`` of ``graph`` whose ``W``, ``R`` and
    ``B`` are initializers, by nodes that compute its outputs with a
    ``Scan``; returns the ``Scan``. The op's initializers stay in ``graph`` for
    the caller to drop once nothing reads them.

    Args:
        graph: the graph holding ``node``; changed in place.
        node: the ``RNN`` node (one direction, no ``clip``; an ``initial_h``,
            a stream's state, only without ``sequence_lens``).
    """
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    activation, parameters = _activation(attributes)
    if attributes.get("direction", b"forward") not in (b"forward", "forward"):
        raise ParityError(f"RNN node {node.name!r}: only a forward RNN becomes a scan")
    if "clip" in attributes:
        raise ParityError(f"RNN node {node.name!r}: a clipped RNN does not become a scan")
    constants = {tensor.name: tensor for tensor in graph.initializer}
    inputs = list(node.input) + [""] * (6 - len(node.input))
    x, w, r, b, lengths, initial = inputs[:6]
    if not {w, r, b} <= constants.keys():
        raise ParityError(f"RNN node {node.name!r}: W, R and B must be initializers")
    if initial and lengths:
        raise ParityError(
            f"RNN node {node.name!r}: an initial state with sequence_lens does not become a scan"
        )
    weights, recurrence = (numpy_helper.to_array(constants[n])[0] for n in (w, r))
    bias = numpy_helper.to_array(constants[b])[0]
    units = recurrence.shape[1]
    outputs = list(node.output) + [""] * (2 - len(node.output))
    y, y_h = outputs[:2]
    prefix = (node.name or y_h or y) + "/scan/"

    def name(part: str) -> str:
        return prefix + part

    graph.initializer.extend(
        [
            numpy_helper.from_array(weights.T.copy(), name("W_t")),
            numpy_helper.from_array(recurrence.T.copy(), name("R_t")),
            numpy_helper.from_array(bias[:units] + bias[units:], name("bias")),
            numpy_helper.from_array(np.array(0, np.int64), name("zero")),
            numpy_helper.from_array(np.array(1, np.int64), name("one")),
            numpy_helper.from_array(np.array([0], np.int64), name("axis_0")),
            numpy_helper.from_array(np.array([1], np.int64), name("axis_1")),
            numpy_helper.from_array(np.array([units], np.int64), name("units")),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), name("steps_shape")),
            numpy_helper.from_array(np.array([1, -1, 1], np.int64), name("rows_shape")),
            numpy_helper.from_array(np.array(0.0, np.float32), name("zero_value")),
        ]
    )
    nodes = [
        helper.make_node("MatMul", [x, name("W_t")], [name("x_w")]),
        helper.make_node("Add", [name("x_w"), name("bias")], [name("x_projected")]),
    ]
    if initial:  # (1, rows, units) -> (rows, units)
        nodes.append(helper.make_node("Squeeze", [initial, name("axis_0")], [name("h_0")]))
    else:  # the state starts from zeros: (rows, units)
        nodes += [
            helper.make_node("Shape", [x], [name("x_shape")]),
            helper.make_node("Gather", [name("x_shape"), name("axis_1")], [name("rows")]),
            helper.make_node("Concat", [name("rows"), name("units")], [name("state")], axis=0),
            helper.make_node("ConstantOfShape", [name("state")], [name("h_0")]),
        ]
    every_step = bool(lengths or y)
    scan = helper.make_node(
        "Scan",
        [name("h_0"), name("x_projected")],
        [name("h_last"), *([name("every_h")] if every_step else [])],
        name=prefix.rstrip("/"),
        body=_step_body(prefix, units, activation, parameters, every_step=every_step),
        num_scan_inputs=1,
        doc_string="RNN with sequence_lens" if lengths else "RNN",
    )
    nodes.append(scan)
    if lengths:
        nodes += _held_past_lengths(name, lengths, y=bool(y))
    if y_h:
        last = name("h_at_length") if lengths else name("h_last")
        nodes.append(helper.make_node("Unsqueeze", [last, name("axis_0")], [y_h]))
    if y:
        steps = name("y_steps") if lengths else name("every_h")
        nodes.append(helper.make_node("Unsqueeze", [steps, name("axis_1")], [y]))
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)
    return scan


def _held_past_lengths(
    name: Callable[[str], str], lengths: str, *, y: bool
) -> list[onnx.NodeProto]:
    """The state at each row's last valid step (``h_at_length``; zeros for a
    row of length 0) and, when ``y``, ``Y`` with zeros at each row's steps
    past its length (``y_steps``), from the state at every step
    (``every_h``), with the shapes ``rnn_as_scan`` computed (``x_shape``,
    ``state``). Rows are valid for a prefix of their steps, so the scan
    runs every row to the end and holds nothing: what a row computes past
    its length is never read."""
    nodes = [
        helper.make_node("Cast", [lengths], [name("lengths")], to=TensorProto.INT64),
        helper.make_node("Reshape", [name("lengths"), name("rows_shape")], [name("len_3d")]),
        # each row's step (length - 1), or step 0 for a row of length 0
        helper.make_node("Sub", [name("len_3d"), name("one")], [name("last_3d")]),
        helper.make_node("Max", [name("last_3d"), name("zero")], [name("last_step")]),
        helper.make_node("Concat", [name("axis_1"), name("state")], [name("h_shape")], axis=0),
        helper.make_node("Expand", [name("last_step"), name("h_shape")], [name("index")]),
        helper.make_node(
            "GatherElements", [name("every_h"), name("index")], [name("h_at_1")], axis=0
        ),
        helper.make_node("Greater", [name("len_3d"), name("zero")], [name("any_step")]),
        helper.make_node(
            "Where", [name("any_step"), name("h_at_1"), name("zero_value")], [name("h_at")]
        ),
        helper.make_node("Squeeze", [name("h_at"), name("axis_0")], [name("h_at_length")]),
    ]
    if y:  # valid[t, row, 0]: step t is within the row's length
        nodes += [
            helper.make_node("Gather", [name("x_shape"), name("zero")], [name("steps")]),
            helper.make_node("Range", [name("zero"), name("steps"), name("one")], [name("t")]),
            helper.make_node("Reshape", [name("t"), name("steps_shape")], [name("t_3d")]),
            helper.make_node("Less", [name("t_3d"), name("len_3d")], [name("valid")]),
            helper.make_node(
                "Where", [name("valid"), name("every_h"), name("zero_value")], [name("y_steps")]
            ),
        ]
    return nodes


def _activation(attributes: dict) -> tuple[str, dict[str, float]]:
    """The activation op's type and attributes (ONNX RNN's default is Tanh)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in attributes.get("activations", [])]
    kind = names[0] if names else "Tanh"
    if kind not in ACTIVATION_PARAMETERS or len(names) > 1:
        raise ParityError(f"RNN activation {names} does not become a scan")
    alphas, betas = attributes.get("activation_alpha", []), attributes.get("activation_beta", [])
    values = dict(zip(ACTIVATION_PARAMETERS[kind], [*alphas[:1], *betas[:1]], strict=False))
    return kind, values


def _step_body(
    prefix: str, units: int, activation: str, parameters: dict, *, every_step: bool
) -> onnx.GraphProto:
    """One step: ``h' = activation(x_i + h R^T)``, ``x_i`` being the step's
    projected input, and ``h'`` as the step's scan output when ``every_step``."""

    def name(part: str) -> str:
        return prefix + "step/" + part

    nodes = [
        helper.make_node("Gemm", [name("h"), prefix + "R_t", name("x_i")], [name("z")]),
        helper.make_node(activation, [name("z")], [name("h_next")], **parameters),
    ]
    if every_step:
        nodes.append(helper.make_node("Identity", [name("h_next")], [name("h_i")]))

    def rows(value: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(value, TensorProto.FLOAT, ["batch", units])

    inputs = [rows(name("h")), rows(name("x_i"))]
    outputs = [rows(name("h_next")), *([rows(name("h_i"))] if every_step else [])]
    return helper.make_graph(nodes, BODY, inputs, outputs)
