"""The one-call generation graph: the encoder, then an ONNX ``Loop`` over the
step graph, held to the Python step loop (``runtime.generate``) that runs the
same two graphs one call per step.

Hand-built toy graphs cover every feedback rule, states that start from
zeros and the states that the loop carries unsqueezed, without TensorFlow;
exported Keras models cover what tf2onnx really writes (fused LSTMs, GRU
``Loop``s nested in the body).
"""

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from parity import runtime
from parity.exporter.bundle_writer import placeholder_graph, write_bundle
from parity.exporter.loop import START, STEPS, generation_graph, generation_specs
from parity.exporter.onnx_passes import prefixed, simplified
from parity.runtime.bundle_format.manifest import (
    FORMAT_VERSION,
    Manifest,
    Seq2SeqSpec,
    StateSpec,
    TensorSpec,
)
from parity.runtime.errors import ParityError
from parity.runtime.sampling import sample_inputs
from tests import seq2seq_models
from tests.bundles import SOURCE, VERSIONS, numpy_generate, write_seq2seq

OPSET = 17


def protos(path: Path, manifest: Manifest) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    spec = manifest.seq2seq
    return tuple(
        onnx.load(path / manifest.graph(key).file) for key in (spec.encoder_graph, spec.step_graph)
    )


def compose(path: Path, manifest: Manifest) -> onnx.ModelProto:
    """The generation graph of a hand-written bundle, its step graph simplified
    first as the exporter simplifies every graph it writes."""
    encoder, step = protos(path, manifest)
    return generation_graph(encoder, simplified(step), manifest.seq2seq, opset=OPSET)


def write_toy(path: Path, name: str, encoder: bytes, step: bytes, spec: Seq2SeqSpec) -> Manifest:
    """Write a hand-built seq2seq bundle of ``encoder`` and ``step`` (serialized graphs)."""
    graphs = {
        key: placeholder_graph(f"{key}.onnx", *signature(data))
        for key, data in (("encoder", encoder), ("step", step))
    }
    manifest = Manifest(
        FORMAT_VERSION, name, "seq2seq", SOURCE, OPSET, VERSIONS, graphs, seq2seq=spec
    )
    return write_bundle(path, manifest, {"encoder": encoder, "step": step})


def run_loop(model: onnx.ModelProto, encoder_inputs, start, steps: int) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {**encoder_inputs, START: start, STEPS: np.array(steps, np.int64)}
    (output,) = session.run(None, feeds)
    return output


def loop_body(model: onnx.ModelProto) -> onnx.GraphProto:
    (loop,) = [node for node in model.graph.node if node.op_type == "Loop"]
    return loop.attribute[0].g


# --- toy graphs -----------------------------------------------------------------

VOCAB = 6
UNITS = 4
SOURCE_FEATURES = 3


def _model(nodes, inputs, outputs, initializers) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    return model.SerializeToString()


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def signature(data: bytes) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The manifest's inputs and outputs of a serialized graph."""
    graph = onnx.load_from_string(data).graph

    def spec(value):
        tensor = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        dims = tuple(d.dim_param or d.dim_value for d in tensor.shape.dim)
        return TensorSpec(value.name, dtype, dims)

    return [spec(v) for v in graph.input], [spec(v) for v in graph.output]


def write_token_toy(path: Path) -> Manifest:
    """A token decoder in the layout tf2onnx writes: the step takes token ids
    (batch, 1) and two states, ``h`` from the encoder and ``z`` from zeros;
    each state is unsqueezed on entry and its new value squeezed on exit, on
    different axes (h on 0, z on 1), so the loop can carry both unsqueezed.
    ``logits = tanh(E[token] + h + z) @ P``; ``h' = tanh(...)``, ``z' = 0.5 z + E[token]``.
    ``P`` is stored transposed, as a weight-only node the loop need not repeat."""
    rng = np.random.default_rng(3)

    def tensor(name, *shape, dtype=np.float32):
        return numpy_helper.from_array(rng.normal(size=shape).astype(dtype), name)

    axis0 = numpy_helper.from_array(np.array([0], np.int64), "axis0")
    axis1 = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    encoder = _model(
        [
            helper.make_node("MatMul", ["source", "W"], ["projected"]),
            helper.make_node("ReduceMean", ["projected"], ["h_init"], axes=[1], keepdims=0),
        ],
        [_float("source", ["batch", "time", SOURCE_FEATURES])],
        [_float("h_init", ["batch", UNITS])],
        [tensor("W", SOURCE_FEATURES, UNITS)],
    )
    step = _model(
        [
            helper.make_node("Gather", ["E", "tokens"], ["embedded"]),
            helper.make_node("Unsqueeze", ["h", "axis0"], ["h_t"]),
            helper.make_node("Transpose", ["h_t"], ["h_b"], perm=[1, 0, 2]),
            helper.make_node("Unsqueeze", ["z", "axis1"], ["z_b"]),
            helper.make_node("Add", ["embedded", "h_b"], ["partial"]),
            helper.make_node("Add", ["partial", "z_b"], ["summed"]),
            helper.make_node("Tanh", ["summed"], ["hidden"]),
            helper.make_node("Transpose", ["P_t"], ["P"], perm=[1, 0]),
            helper.make_node("MatMul", ["hidden", "P"], ["logits"]),
            helper.make_node("Transpose", ["hidden"], ["hidden_t"], perm=[1, 0, 2]),
            helper.make_node("Squeeze", ["hidden_t", "axis0"], ["h_next"]),
            helper.make_node("Mul", ["z_b", "half"], ["z_half"]),
            helper.make_node("Add", ["z_half", "embedded"], ["z_sum"]),
            helper.make_node("Squeeze", ["z_sum", "axis1"], ["z_next"]),
        ],
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", 1]),
            _float("h", ["batch", UNITS]),
            _float("z", ["batch", UNITS]),
        ],
        [
            _float("logits", ["batch", 1, VOCAB]),
            _float("h_next", ["batch", UNITS]),
            _float("z_next", ["batch", UNITS]),
        ],
        [tensor("E", VOCAB, UNITS), tensor("P_t", VOCAB, UNITS), axis0, axis1, half],
    )
    states = (
        StateSpec("h", "cell", "h", UNITS, "h", "h_next", "encoder", "h_init"),
        StateSpec("z", "cell", "c", UNITS, "z", "z_next", "zeros"),
    )
    spec = Seq2SeqSpec(
        encoder_graph="encoder",
        step_graph="step",
        encoder_input="source",
        step_input="tokens",
        step_output="logits",
        states=states,
        feedback="argmax_token",
        steps=5,
        start="token",
        start_token=2,
    )
    return write_toy(path, "token_toy", encoder, step, spec)


def write_lstm_toy(path: Path) -> Manifest:
    """Two stacked single-step LSTMs and a Dense, in the layout tf2onnx writes:
    the step input reshaped to (1, batch, F), each state unsqueezed to the
    fused op and squeezed back, the first layer's ``Y`` squeezed into the
    second, the second's reshaped to (batch, 1, H), and the Dense's output
    shape computed from ``Shape`` at every step (Shape, Cast, Gather, Concat,
    Cast). The encoder gives the first layer's (h, c); the second starts from
    zeros."""
    rng = np.random.default_rng(11)
    features, units = SOURCE_FEATURES, UNITS

    def tensor(name, *shape):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32) * 0.5, name)

    def ints(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.array(values, dtype), name)

    encoder = _model(
        [
            helper.make_node("MatMul", ["source", "W"], ["projected"]),
            helper.make_node("ReduceMean", ["projected"], ["h_init"], axes=[1], keepdims=0),
            helper.make_node("Tanh", ["h_init"], ["c_init"]),
        ],
        [_float("source", ["batch", "time", features])],
        [_float("h_init", ["batch", units]), _float("c_init", ["batch", units])],
        [tensor("W", features, units)],
    )
    nodes = [helper.make_node("Reshape", ["x", "to_time_major"], ["x_t"])]
    layer_input = "x_t"
    for layer in (1, 2):
        for kind in ("h", "c"):
            nodes.append(
                helper.make_node("Unsqueeze", [f"{kind}{layer}", "axis0"], [f"{kind}{layer}_u"])
            )
        nodes.append(
            helper.make_node(
                "LSTM",
                [
                    layer_input,
                    f"W{layer}",
                    f"R{layer}",
                    f"B{layer}",
                    "",
                    f"h{layer}_u",
                    f"c{layer}_u",
                ],
                [f"Y{layer}", f"Yh{layer}", f"Yc{layer}"],
                hidden_size=units,
            )
        )
        for kind, out in (("h", "Yh"), ("c", "Yc")):
            nodes.append(
                helper.make_node("Squeeze", [f"{out}{layer}", "axis0"], [f"{kind}{layer}_next"])
            )
        layer_input = "Y1_s"
    nodes.insert(7, helper.make_node("Squeeze", ["Y1", "axis1"], ["Y1_s"]))
    nodes += [
        helper.make_node("Reshape", ["Y2", "to_batch_major"], ["seq"]),
        helper.make_node("Shape", ["seq"], ["seq_shape"]),
        helper.make_node("Cast", ["seq_shape"], ["seq_shape32"], to=TensorProto.INT32),
        helper.make_node("Gather", ["seq_shape32", "free"], ["free_dims"]),
        helper.make_node("Concat", ["free_dims", "out_size"], ["out_shape32"], axis=0),
        helper.make_node("Cast", ["out_shape32"], ["out_shape"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["seq", "flat"], ["seq_flat"]),
        helper.make_node("MatMul", ["seq_flat", "D"], ["projected"]),
        helper.make_node("Reshape", ["projected", "out_shape"], ["y"]),
    ]
    weights = [
        tensor(name, 1, 4 * units, size)
        for name, size in (("W1", features), ("R1", units), ("W2", units), ("R2", units))
    ]
    weights += [
        tensor("B1", 1, 8 * units),
        tensor("B2", 1, 8 * units),
        tensor("D", units, features),
    ]
    weights += [
        ints("axis0", [0]),
        ints("axis1", [1]),
        ints("to_time_major", [1, -1, features]),
        ints("to_batch_major", [-1, 1, units]),
        ints("flat", [-1, units]),
        ints("free", [0, 1], np.int32),
        ints("out_size", [features], np.int32),
    ]
    state_names = [f"{kind}{layer}" for layer in (1, 2) for kind in ("h", "c")]
    step = _model(
        nodes,
        [_float("x", ["batch", 1, features]), *(_float(n, ["batch", units]) for n in state_names)],
        [
            _float("y", ["batch", 1, features]),
            *(_float(f"{n}_next", ["batch", units]) for n in state_names),
        ],
        weights,
    )
    states = tuple(
        StateSpec(
            name,
            f"lstm_{name[1]}",
            name[0],
            units,
            name,
            f"{name}_next",
            "encoder" if name[1] == "1" else "zeros",
            f"{name[0]}_init" if name[1] == "1" else None,
        )
        for name in state_names
    )
    spec = Seq2SeqSpec(
        encoder_graph="encoder",
        step_graph="step",
        encoder_input="source",
        step_input="x",
        step_output="y",
        states=states,
        feedback="identity",
        steps=5,
        start="last_encoder_step",
    )
    return write_toy(path, "lstm_toy", encoder, step, spec)


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    """feedback rule -> (bundle, generation graph, numpy weights or None)."""
    folder = tmp_path_factory.mktemp("loop_toys")
    result = {}
    for feedback in ("identity", "argmax_onehot"):
        manifest, weights = write_seq2seq(folder / feedback, feedback)
        bundle = runtime.load_bundle(folder / feedback, device="cpu")
        result[feedback] = (bundle, compose(bundle.path, manifest), weights)
    manifest = write_token_toy(folder / "argmax_token")
    bundle = runtime.load_bundle(folder / "argmax_token", device="cpu")
    result["argmax_token"] = (bundle, compose(bundle.path, manifest), None)
    manifest = write_lstm_toy(folder / "lstm")
    bundle = runtime.load_bundle(folder / "lstm", device="cpu")
    result["lstm"] = (bundle, compose(bundle.path, manifest), None)
    return result


def encoder_inputs(manifest: Manifest, batch: int, seed: int) -> dict[str, np.ndarray]:
    specs = manifest.graph(manifest.seq2seq.encoder_graph).inputs
    return sample_inputs(specs, batch, time=6, seed=seed).inputs


@pytest.mark.parametrize("feedback", ["identity", "argmax_onehot", "argmax_token"])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("steps", [1, 9])
def test_toy_loop_equals_the_python_step_loop(toys, feedback, batch, steps):
    bundle, model, weights = toys[feedback]
    inputs = encoder_inputs(bundle.manifest, batch, seed=batch + steps)
    start = runtime.start_input(bundle.manifest, inputs)
    expected = runtime.generate(bundle, inputs, start=start, steps=steps, use_loop_graph=False)
    actual = run_loop(model, inputs, start, steps)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    if weights is not None:
        x = inputs[bundle.manifest.seq2seq.encoder_input]
        reference = numpy_generate(weights, x, start, steps, feedback)
        np.testing.assert_allclose(actual, reference, rtol=0, atol=1e-5)


def test_token_feedback_is_not_stuck(toys):
    """Tokens must change along a generation, or the feedback goes untested."""
    bundle, model, _ = toys["argmax_token"]
    inputs = encoder_inputs(bundle.manifest, 5, seed=1)
    tokens = run_loop(model, inputs, runtime.start_input(bundle.manifest, inputs), 9).argmax(-1)
    assert len(np.unique(tokens)) > 1


def test_a_start_other_than_the_rule(toys):
    bundle, model, _ = toys["identity"]
    inputs = encoder_inputs(bundle.manifest, 3, seed=7)
    start = np.random.default_rng(7).normal(size=(3, 1, 2)).astype(np.float32)
    expected = runtime.generate(bundle, inputs, start=start, steps=4, use_loop_graph=False)
    np.testing.assert_allclose(run_loop(model, inputs, start, 4), expected, rtol=0, atol=1e-6)


def test_states_travel_unsqueezed_and_weights_stay_outside(toys):
    _, model, _ = toys["argmax_token"]
    body = loop_body(model)
    ops = [node.op_type for node in body.node]
    # None of the states' Unsqueeze/Squeeze pairs is left, and the step
    # output's time axis is squeezed once, after the loop.
    assert ops.count("Unsqueeze") == 0
    assert ops.count("Squeeze") == 0
    assert not body.initializer
    outer = {tensor.name for tensor in model.graph.initializer}
    assert "step/E" in outer
    # The transpose of a weight is made outside the loop (folded into an
    # initializer, or a node of the outer graph), never per step.
    made_outside = outer | {name for node in model.graph.node for name in node.output}
    assert "step/P" in made_outside
    assert "step/P" not in {name for node in body.node for name in node.output}
    assert all(set(node.input) - outer for node in body.node if node.input)


@pytest.mark.parametrize("batch", [1, 4])
def test_lstm_toy_loop_equals_the_python_step_loop(toys, batch):
    bundle, model, _ = toys["lstm"]
    inputs = encoder_inputs(bundle.manifest, batch, seed=batch)
    start = runtime.start_input(bundle.manifest, inputs)
    expected = runtime.generate(bundle, inputs, start=start, steps=7, use_loop_graph=False)
    actual = run_loop(model, inputs, start, 7)
    assert actual.shape == expected.shape == (batch, 7, SOURCE_FEATURES)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_lstm_toy_body_keeps_no_layout_work(toys):
    """What the body runs per step: the two LSTMs (the second reads the first's
    Y_h, neither writes Y), the Dense and the Reshapes to its constant shapes,
    and the loop's condition; the step input's Reshape runs once, outside."""
    _, model, _ = toys["lstm"]
    body = loop_body(model)
    ops = [node.op_type for node in body.node]
    assert sorted(ops) == sorted(
        ["LSTM", "LSTM", "Reshape", "MatMul", "Reshape", "Reshape", "Identity"]
    )
    first, second = [node for node in body.node if node.op_type == "LSTM"]
    assert second.input[0] == first.output[1]
    assert first.output[0] == second.output[0] == ""
    outer = {tensor.name for tensor in model.graph.initializer}
    for node in body.node:
        if node.op_type == "Reshape":
            assert node.input[1] in outer  # a constant shape, nothing computed per step


@pytest.mark.parametrize("feedback", ["identity", "argmax_onehot", "argmax_token"])
def test_graph_is_valid_onnx_that_onnxruntime_loads(toys, feedback):
    bundle, model, _ = toys[feedback]
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    manifest = bundle.manifest
    spec = manifest.seq2seq
    encoder, step = manifest.graph("encoder"), manifest.graph("step")
    inputs, outputs = generation_specs(encoder.inputs, step.inputs, step.outputs, spec)
    assert [i.name for i in model.graph.input] == [s.name for s in inputs]
    assert [o.name for o in model.graph.output] == [s.name for s in outputs] == [spec.step_output]
    assert inputs[-2].shape == step.input(spec.step_input).shape
    assert inputs[-1] == TensorSpec(STEPS, "int64", ())
    assert outputs[0].shape[:2] == ("batch", "steps")


def test_prefixing_reaches_a_subgraph_that_reads_an_outer_weight():
    """A subgraph may read an initializer of the graph around it; once the
    names are prefixed it must read the weight under its new name, and the
    inputs keep theirs when asked."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["x_in", "W"], ["x_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            _float("x_in", [2]),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _float("x_out", [2])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)],
        "g",
        [_float("x", [2]), helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [_float("y", [2])],
        initializer=[numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "W")],
    )
    renamed = prefixed(graph, "p/", rename_inputs=False)
    model = helper.make_model(renamed, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": np.zeros(2, np.float32), "n": np.array(3, np.int64)}
    (y,) = session.run(["p/y"], feeds)
    np.testing.assert_array_equal(y, [3.0, 6.0])


def test_simplifying_keeps_how_values_are_computed():
    """A MatMul and a bias Add stay two nodes: onnx-simplifier would make them
    one Gemm, which rounds differently from the graph that was checked."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "g",
        [_float("x", [5, 3])],
        [_float("y", [5, 4])],
        initializer=[
            numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    result = simplified(model)
    assert [node.op_type for node in result.graph.node] == ["MatMul", "Add"]
    x = rng.normal(size=(5, 3)).astype(np.float32)
    outputs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )[0]
        for m in (model, result)
    ]
    np.testing.assert_array_equal(outputs[0], outputs[1])


# --- refusals -------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity_toy(toys):
    bundle = toys["identity"][0]
    encoder, step = protos(bundle.path, bundle.manifest)
    return encoder, step, bundle.manifest.seq2seq


def refused(encoder, step, spec, phrase, opset=OPSET):
    with pytest.raises(ParityError, match=phrase):
        generation_graph(encoder, step, spec, opset=opset)


def test_unknown_feedback_is_refused(identity_toy):
    encoder, step, spec = identity_toy
    refused(encoder, step, replace(spec, feedback="sample"), "sample")


def test_opset_other_than_the_graphs_is_refused(identity_toy):
    encoder, step, spec = identity_toy
    refused(encoder, step, spec, "imports opset 17", opset=16)
    refused(encoder, step, spec, "opset 13 or later", opset=12)


def test_missing_names_are_refused(identity_toy):
    encoder, step, spec = identity_toy
    state = spec.states[0]
    wrong_output = replace(state, encoder_output="nowhere")
    refused(encoder, step, replace(spec, states=(wrong_output,)), "nowhere")
    refused(encoder, step, replace(spec, states=()), "not the step input")
    refused(encoder, step, replace(spec, step_output="out"), "'out'")


def test_encoder_input_named_like_a_loop_input_is_refused(identity_toy):
    encoder, step, spec = identity_toy
    clashing = onnx.ModelProto()
    clashing.CopyFrom(encoder)
    clashing.graph.input[0].name = START
    for node in clashing.graph.node:
        node.input[:] = [START if n == spec.encoder_input else n for n in node.input]
    refused(clashing, step, spec, "collide")


# --- exported Keras models ------------------------------------------------------

REAL_ATOL = 1e-5
REAL_STEPS = 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_zoo):
    """name -> (bundle, generation graph) for seq2seq models exported with tf2onnx."""
    from parity.exporter.seq2seq_bundle import export_seq2seq

    folder = tmp_path_factory.mktemp("loop_exported")
    keras.utils.set_random_seed(5)
    built = {
        "sine_seq2seq": trained_zoo["sine_seq2seq"].model,
        "gru_stack": seq2seq_models.gru_stack(),
        "token_lstm": seq2seq_models.token_lstm(),
        "zeros_below": seq2seq_models.zeros_below(),
    }
    result = {}
    for name, model in built.items():
        manifest = export_seq2seq(model, folder / name, source_info=SOURCE, golden_batch=1)
        bundle = runtime.load_bundle(folder / name, device="cpu")
        result[name] = (bundle, compose(folder / name, manifest))
    return result


@pytest.mark.parametrize("name", ["sine_seq2seq", "gru_stack", "token_lstm", "zeros_below"])
@pytest.mark.parametrize("batch", [1, 7])
def test_exported_loop_equals_the_python_step_loop(exported, name, batch):
    bundle, model = exported[name]
    inputs = encoder_inputs(bundle.manifest, batch, seed=batch)
    start = runtime.start_input(bundle.manifest, inputs)
    expected = runtime.generate(bundle, inputs, start=start, steps=REAL_STEPS, use_loop_graph=False)
    actual = run_loop(model, inputs, start, REAL_STEPS)
    assert actual.shape == expected.shape == (batch, REAL_STEPS, *expected.shape[2:])
    np.testing.assert_allclose(actual, expected, rtol=0, atol=REAL_ATOL)


def test_exported_sine_body_is_smaller_than_the_step_graph(exported):
    """The fused LSTMs' state Unsqueeze/Squeeze pairs leave the body, and so
    does the layout work tf2onnx puts around them: per step the body runs the
    LSTMs (none writes Y), the Dense's MatMul, three Reshapes to
    constant shapes and the loop's condition."""
    bundle, model = exported["sine_seq2seq"]
    _, step = protos(bundle.path, bundle.manifest)
    body = loop_body(model)
    states = len(bundle.manifest.seq2seq.states)
    assert len(body.node) <= len(step.graph.node) - 2 * states + 2
    assert not body.initializer
    ops = [node.op_type for node in body.node]
    layers = states // 2
    assert ops.count("LSTM") == layers
    # Besides the LSTMs: MatMul, the bias's Add, three Reshapes, the condition.
    assert len(ops) <= layers + 6, ops
    assert not {"Shape", "Gather", "Concat", "Cast", "Squeeze", "Unsqueeze"} & set(ops)
    assert all(node.output[0] == "" for node in body.node if node.op_type == "LSTM")


# --- stop token -----------------------------------------------------------------


def write_counting_toy(path: Path, vocab: int = 12) -> Manifest:
    """A token decoder that counts: the encoder's state is the mean of its
    input, and step ``t`` emits the token nearest ``state + t``, so a row whose
    input averages ``k`` emits token ``s`` at step ``s - k`` exactly."""
    encoder = _model(
        [helper.make_node("ReduceMean", ["source"], ["offset"], axes=[1], keepdims=0)],
        [_float("source", ["batch", "time", 1])],
        [_float("offset", ["batch", 1])],
        [],
    )
    ids = numpy_helper.from_array(np.arange(vocab, dtype=np.float32), "ids")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    step = _model(
        [
            helper.make_node("Unsqueeze", ["count", "axes"], ["count3"]),
            helper.make_node("Sub", ["count3", "ids"], ["distance"]),
            helper.make_node("Mul", ["distance", "distance"], ["squared"]),
            helper.make_node("Neg", ["squared"], ["logits"]),
            helper.make_node("Add", ["count", "one"], ["count_next"]),
        ],
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", 1]),
            _float("count", ["batch", 1]),
        ],
        [_float("logits", ["batch", 1, vocab]), _float("count_next", ["batch", 1])],
        [ids, one, axes],
    )
    spec = Seq2SeqSpec(
        encoder_graph="encoder",
        step_graph="step",
        encoder_input="source",
        step_input="tokens",
        step_output="logits",
        states=(StateSpec("count", "cell", "h", 1, "count", "count_next", "encoder", "offset"),),
        feedback="argmax_token",
        steps=6,
        start="token",
        start_token=0,
    )
    return write_toy(path, "counting_toy", encoder, step, spec)


def test_a_stopped_row_repeats_its_output(tmp_path):
    """Rows starting at 0 and 1 emit the stop token 3 at steps 3 and 2 and then
    repeat that output; the row starting at 5 never emits it, so the
    generation runs its whole horizon."""
    write_counting_toy(tmp_path / "toy")
    bundle = runtime.load_bundle(tmp_path / "toy", device="cpu")
    source = np.array([0.0, 1.0, 5.0], np.float32).reshape(3, 1, 1) * np.ones((1, 4, 1))
    source = source.astype(np.float32)
    free = runtime.generate(bundle, source, steps=6).argmax(-1)
    np.testing.assert_array_equal(free, [[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6],
                                         [5, 6, 7, 8, 9, 10]])  # fmt: skip
    stopped = runtime.generate(bundle, source, steps=6, stop_token=3)
    assert stopped.shape == (3, 6, 12)
    np.testing.assert_array_equal(stopped.argmax(-1), [[0, 1, 2, 3, 3, 3], [1, 2, 3, 3, 3, 3],
                                                       [5, 6, 7, 8, 9, 10]])  # fmt: skip
    for row, first in ((0, 3), (1, 2)):
        np.testing.assert_array_equal(stopped[row, first:], np.repeat(stopped[row, first:][:1],
                                                                      6 - first, 0))  # fmt: skip


def test_one_row_generates_on_a_single_thread_session_with_the_same_outputs(toys):
    """A batch of one row runs on a one-thread session of the same graph, and
    computes what the default session computes."""
    from parity.runtime.bundle import Bundle

    bundle, _, _ = toys["lstm"]
    spec = bundle.manifest.seq2seq
    for graph in (spec.encoder_graph, spec.step_graph):
        assert bundle.session(graph, 1) is not bundle.session(graph)
        assert bundle.session(graph, 1).get_session_options().intra_op_num_threads == 1
        assert bundle.session(graph, 2) is bundle.session(graph)
    # the same sessions without the graphs' files: no one-row session to open
    sessions = {key: bundle.session(key) for key in bundle.manifest.graphs}
    default = Bundle(bundle.path, bundle.manifest, sessions)
    assert default.session(spec.step_graph, 1) is bundle.session(spec.step_graph)
    inputs = encoder_inputs(bundle.manifest, 1, seed=3)
    one_row = runtime.generate(bundle, inputs, steps=7, use_loop_graph=False)
    expected = runtime.generate(default, inputs, steps=7, use_loop_graph=False)
    np.testing.assert_array_equal(one_row, expected)
