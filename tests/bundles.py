"""Small hand-built bundles for runtime tests: real ONNX graphs, written with
``runtime.store.write_bundle``, no TensorFlow needed."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from parity.exporter.bundle_writer import placeholder_graph, write_bundle
from parity.runtime.bundle_format.manifest import (
    FORMAT_VERSION,
    Manifest,
    MaskSpec,
    Seq2SeqSpec,
    StateSpec,
    TensorSpec,
)

SOURCE = {"name": "handmade", "file": "handmade.keras", "sha256": "0" * 64}
VERSIONS = {"onnx": "test"}


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()


def _value(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def scale_graph() -> bytes:
    """``y = 2 * x`` on (batch, time, 3); ``ids`` (batch, time) int64 passes through."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    return _model(
        [
            helper.make_node("Mul", ["x", "two"], ["y"]),
            helper.make_node("Identity", ["ids"], ["z"]),
        ],
        [
            _value("x", TensorProto.FLOAT, ["batch", "time", 3]),
            _value("ids", TensorProto.INT64, ["batch", "time"]),
        ],
        [
            _value("y", TensorProto.FLOAT, ["batch", "time", 3]),
            _value("z", TensorProto.INT64, ["batch", "time"]),
        ],
        [two],
    )


def write_single(path: Path, factor: float = 2.0) -> Manifest:
    """A bundle whose golden outputs say ``y = factor * x`` (the graph computes 2 x)."""
    inputs = (
        TensorSpec("x", "float32", ("batch", "time", 3), {"kind": "uniform", "low": -1, "high": 1}),
        TensorSpec("ids", "int64", ("batch", "time"), {"kind": "tokens", "vocab": 10}),
    )
    outputs = (
        TensorSpec("y", "float32", ("batch", "time", 3)),
        TensorSpec("z", "int64", ("batch", "time")),
    )
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name="scale",
        kind="single",
        source=SOURCE,
        opset=17,
        versions=VERSIONS,
        graphs={"model": placeholder_graph("model.onnx", inputs, outputs)},
        mask=MaskSpec(input="x", value=0.0),
    )
    x = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    ids = np.arange(4, dtype=np.int64).reshape(1, 4)
    golden = {
        "model/inputs/x": x,
        "model/inputs/ids": ids,
        "model/outputs/y": np.float32(factor) * x,
        "model/outputs/z": ids,
    }
    return write_bundle(path, manifest, {"model": scale_graph()}, golden)


FEATURES = 2
UNITS = 3


def write_seq2seq(path: Path, feedback: str = "identity") -> tuple[Manifest, dict]:
    """A toy forecaster: the encoder's state is the mean over time of x @ W;
    a step maps (x, h) to ``out = x @ V + h`` (batch, 1, F) and ``h' = 0.5 h``.
    With feedback "argmax_onehot" the step input is a one-hot over F tokens."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(FEATURES, UNITS)).astype(np.float32), "W")
    v = numpy_helper.from_array(rng.normal(size=(FEATURES, FEATURES)).astype(np.float32), "V")
    u = numpy_helper.from_array(rng.normal(size=(UNITS, FEATURES)).astype(np.float32), "U")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    encoder = _model(
        [
            helper.make_node("MatMul", ["encoder_input", "W"], ["xw"]),
            helper.make_node("ReduceMean", ["xw"], ["h_init"], axes=[1], keepdims=0),
        ],
        [_value("encoder_input", TensorProto.FLOAT, ["batch", "time", FEATURES])],
        [_value("h_init", TensorProto.FLOAT, ["batch", UNITS])],
        [w],
    )
    step = _model(
        [
            helper.make_node("MatMul", ["step_input", "V"], ["xv"]),
            helper.make_node("MatMul", ["h", "U"], ["hu"]),
            helper.make_node("Unsqueeze", ["hu", "axes"], ["hu3"]),
            helper.make_node("Add", ["xv", "hu3"], ["output"]),
            helper.make_node("Mul", ["h", "half"], ["h_next"]),
        ],
        [
            _value("step_input", TensorProto.FLOAT, ["batch", 1, FEATURES]),
            _value("h", TensorProto.FLOAT, ["batch", UNITS]),
        ],
        [
            _value("output", TensorProto.FLOAT, ["batch", 1, FEATURES]),
            _value("h_next", TensorProto.FLOAT, ["batch", UNITS]),
        ],
        [v, u, half, axes],
    )
    spec = Seq2SeqSpec(
        encoder_graph="encoder",
        step_graph="step",
        encoder_input="encoder_input",
        step_input="step_input",
        step_output="output",
        states=(StateSpec("h", "lstm", "h", UNITS, "h", "h_next", "encoder", "h_init"),),
        feedback=feedback,
        steps=6,
        start="last_encoder_step" if feedback == "identity" else "token",
        start_token=None if feedback == "identity" else 1,
    )
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name="toy",
        kind="seq2seq",
        source=SOURCE,
        opset=17,
        versions=VERSIONS,
        graphs={
            "encoder": placeholder_graph(
                "encoder.onnx",
                [TensorSpec("encoder_input", "float32", ("batch", "time", FEATURES))],
                [TensorSpec("h_init", "float32", ("batch", UNITS))],
            ),
            "step": placeholder_graph(
                "step.onnx",
                [
                    TensorSpec("step_input", "float32", ("batch", 1, FEATURES)),
                    TensorSpec("h", "float32", ("batch", UNITS)),
                ],
                [
                    TensorSpec("output", "float32", ("batch", 1, FEATURES)),
                    TensorSpec("h_next", "float32", ("batch", UNITS)),
                ],
            ),
        },
        seq2seq=spec,
    )
    weights = {
        "W": numpy_helper.to_array(w),
        "V": numpy_helper.to_array(v),
        "U": numpy_helper.to_array(u),
    }
    manifest = write_bundle(path, manifest, {"encoder": encoder, "step": step})
    return manifest, weights


def numpy_generate(weights, x, start, steps, feedback="identity"):
    """The toy forecaster's generation in numpy, the reference for the runtime's loop."""
    h = (x @ weights["W"]).mean(axis=1)
    step_x = start
    outputs = []
    for _ in range(steps):
        out = step_x @ weights["V"] + (h @ weights["U"])[:, None]
        h = 0.5 * h
        outputs.append(out[:, 0])
        if feedback == "identity":
            step_x = out
        else:
            step_x = np.eye(FEATURES, dtype=np.float32)[out.argmax(-1)]
    return np.stack(outputs, axis=1)


EXTERNAL_FILE = "weights.bin"


def external_graph(folder: Path) -> bytes:
    """``y = 2 * x * w`` on (batch, time, 3), saved into ``folder`` with ``w``
    (inside an If branch, a subgraph) stored in ``folder/weights.bin``; ``two``
    stays inside the graph. Returns the graph's bytes."""
    w = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "w")
    shape = ["batch", "time", 3]
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["weighted"])],
        "then",
        [],
        [_value("weighted", TensorProto.FLOAT, shape)],
        initializer=[w],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["same"])],
        "else",
        [],
        [_value("same", TensorProto.FLOAT, shape)],
    )
    true = helper.make_tensor("true", TensorProto.BOOL, [], [True])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])  # not raw: kept inline
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["cond"], value=true),
            helper.make_node(
                "If", ["cond"], ["xw"], then_branch=then_branch, else_branch=else_branch
            ),
            helper.make_node("Mul", ["xw", "two"], ["y"]),
        ],
        "g",
        [_value("x", TensorProto.FLOAT, shape)],
        [_value("y", TensorProto.FLOAT, shape)],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save_model(
        model,
        folder / "model.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=EXTERNAL_FILE,
        size_threshold=0,
    )
    return (folder / "model.onnx").read_bytes()


def write_external(path: Path, *, listed: bool = True) -> Manifest:
    """A bundle whose graph (:func:`external_graph`) reads ``weights.bin``
    beside it; the manifest lists that file with its sha256 when ``listed``."""
    with tempfile.TemporaryDirectory() as folder:
        data = external_graph(Path(folder))
        weights = (Path(folder) / EXTERNAL_FILE).read_bytes()
    spec = TensorSpec("x", "float32", ("batch", "time", 3))
    graph = placeholder_graph("model.onnx", [spec], [TensorSpec("y", "float32", spec.shape)])
    if listed:
        digest = hashlib.sha256(weights).hexdigest()
        graph = dataclasses.replace(graph, external_data={EXTERNAL_FILE: digest})
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name="external",
        kind="single",
        source=SOURCE,
        opset=17,
        versions=VERSIONS,
        graphs={"model": graph},
    )
    written = write_bundle(path, manifest, {"model": data})
    (path / EXTERNAL_FILE).write_bytes(weights)  # the writer writes no external data itself
    return written


def write_graph(path: Path, graph: bytes, inputs, outputs, golden=None) -> Manifest:
    """A one-graph bundle of ``graph`` (serialized) whose manifest declares
    ``inputs`` and ``outputs`` (``TensorSpec``), with ``golden`` data if given."""
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name="graph",
        kind="single",
        source=SOURCE,
        opset=17,
        versions=VERSIONS,
        graphs={"model": placeholder_graph("model.onnx", inputs, outputs)},
    )
    return write_bundle(path, manifest, {"model": graph}, golden)


def endless_loop_graph() -> bytes:
    """``y = x + n`` by a ``Loop`` of ``n = 2**62`` iterations: correct, and endless."""
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    body = helper.make_graph(
        [
            helper.make_node("Add", ["v", "one"], ["v_next"]),
            helper.make_node("Identity", ["condition"], ["condition_next"]),
        ],
        "body",
        [
            _value("i", TensorProto.INT64, []),
            _value("condition", TensorProto.BOOL, []),
            _value("v", TensorProto.FLOAT, [1]),
        ],
        [_value("condition_next", TensorProto.BOOL, []), _value("v_next", TensorProto.FLOAT, [1])],
        initializer=[one],
    )
    trips = numpy_helper.from_array(np.array(2**62, np.int64), "trips")
    return _model(
        [helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body)],
        [_value("x", TensorProto.FLOAT, [1])],
        [_value("y", TensorProto.FLOAT, [1])],
        [trips],
    )


def constant_of_shape_graph(shape: tuple[int, ...]) -> bytes:
    """``y = x + sum(ones(shape))``: a graph of a few hundred bytes that asks
    for an array of ``shape`` float32 at run time."""
    dims = numpy_helper.from_array(np.array(shape, np.int64), "dims")
    ones = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    return _model(
        [
            helper.make_node("ConstantOfShape", ["dims"], ["big"], value=ones),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Add", ["x", "total"], ["y"]),
        ],
        [_value("x", TensorProto.FLOAT, [1])],
        [_value("y", TensorProto.FLOAT, [1])],
        [dims],
    )
