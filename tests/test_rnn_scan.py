"""ONNX's RNN op written as a Scan computes what ONNX Runtime's RNN kernel
computes: every activation, with and without per-row lengths (a row of
length 0 among them), with and without the sequence output."""

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from parity.exporter.rnn_scan import BODY, rnn_as_scan
from parity.runtime.errors import ParityError

STEPS, ROWS, FEATURES, UNITS = 7, 5, 3, 4
ACTIVATIONS = {
    "Tanh": {},
    "Relu": {},
    "Sigmoid": {},
    "HardSigmoid": {"activation_alpha": [1 / 6], "activation_beta": [0.5]},
}


def _rnn_model(activation: str, lengths: bool, sequence: bool, **extra) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = {
        "W": (1, UNITS, FEATURES),
        "R": (1, UNITS, UNITS),
        "B": (1, 2 * UNITS),
    }
    node = helper.make_node(
        "RNN",
        ["x", "W", "R", "B", "lengths" if lengths else ""],
        ["y" if sequence else "", "y_h"],
        name="rnn",
        hidden_size=UNITS,
        activations=[activation],
        **ACTIVATIONS[activation],
        **extra,
    )
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, FEATURES])]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [None]))
    outputs = [helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, None, UNITS])]
    if sequence:
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1, None, 4]))
    initializers = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in weights.items()
    ]
    graph = helper.make_graph([node], "rnn", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


@pytest.mark.parametrize(
    "activation, lengths, sequence",
    list(itertools.product(ACTIVATIONS, [False, True], [False, True])),
)
def test_scan_equals_the_rnn_op(activation, lengths, sequence):
    op = _rnn_model(activation, lengths, sequence)
    scanned = onnx.ModelProto()
    scanned.CopyFrom(op)
    scan = rnn_as_scan(scanned.graph, scanned.graph.node[0])
    onnx.checker.check_model(scanned, full_check=True)
    assert scan.attribute[0].g.name == BODY
    assert {node.op_type for node in scanned.graph.node}.isdisjoint({"RNN"})
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((STEPS, ROWS, FEATURES)).astype(np.float32)}
    if lengths:  # a full row, an all-padding row, and rows between
        feeds["lengths"] = np.array([STEPS, 0, 3, 1, 5], np.int32)
    for expected, actual in zip(_run(op, feeds), _run(scanned, feeds), strict=True):
        assert expected.shape == actual.shape
        np.testing.assert_allclose(actual, expected, atol=2e-6, rtol=0)


def test_rows_past_their_length_write_zeros_and_keep_their_last_state():
    """Checked against numpy, so the test does not rest on the kernel alone."""
    op = _rnn_model("Tanh", lengths=True, sequence=True)
    rnn_as_scan(op.graph, op.graph.node[0])
    arrays = {t.name: numpy_helper.to_array(t) for t in op.graph.initializer}
    x = np.random.default_rng(2).standard_normal((STEPS, 2, FEATURES)).astype(np.float32)
    y_h, y = _run(op, {"x": x, "lengths": np.array([3, 0], np.int32)})
    h = np.zeros(UNITS, np.float32)
    for t in range(3):
        h = np.tanh(
            x[t, 0] @ arrays["W"][0].T + h @ arrays["R"][0].T + arrays["B"][0].reshape(2, -1).sum(0)
        )
        np.testing.assert_allclose(y[t, 0, 0], h, atol=1e-6)
    np.testing.assert_allclose(y_h[0, 0], h, atol=1e-6)
    assert not y[3:, 0, 0].any() and not y[:, 0, 1].any() and not y_h[0, 1].any()


@pytest.mark.parametrize(
    "extra, why",
    [
        ({"direction": "bidirectional"}, "forward"),
        ({"clip": 3.0}, "clipped"),
    ],
)
def test_what_the_scan_does_not_cover_is_refused(extra, why):
    model = _rnn_model("Tanh", lengths=False, sequence=False, **extra)
    with pytest.raises(ParityError, match=why):
        rnn_as_scan(model.graph, model.graph.node[0])
