"""A lone recurrent layer (LSTM, GRU, SimpleRNN), masked or not, exported as
ONNX's fused op written from its weights; masked, with sequence lengths."""

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from parity import models, runtime
from parity.exporter.convert import keras_to_onnx
from parity.exporter.fused import FusedGraph, NotFused, fuse_recurrent
from parity.exporter.keras_io import keras_outputs
from parity.exporter.rnn_scan import BODY
from parity.exporter.signature import find_mask
from parity.runtime.errors import InputError, ParityError
from parity.runtime.sampling import sample_inputs
from parity.verify import VerifyOptions, check


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _post_padded(mask, spec, lengths, time_steps, seed=0):
    """Rows of the given valid lengths (0: all padding), post-padded."""
    sample = sample_inputs([spec], len(lengths), time=time_steps, seed=seed, mask=mask,
                           lengths=np.maximum(lengths, 1))  # fmt: skip
    data = sample.inputs[spec.name]
    data[np.asarray(lengths) == 0] = mask.value
    return data


def _fused_equals_keras(model, batch_lengths=None, time_steps=None, op="LSTM", opset=17):
    """Fuse ``model``; on a post-padded batch with every length from 1 to full
    and an all-padding row, each ONNX output equals Keras' eager output."""
    mask = find_mask(model)
    found = fuse_recurrent(model, mask, opset=opset)
    assert isinstance(found, FusedGraph) and found.op_types == (op,)
    fused = found.converted
    ops = [node.op_type for node in fused.proto.graph.node]
    assert ("LSTM" in ops) == (op == "LSTM") and "RNN" not in ops
    assert ops.count(op) == (op != "RNN") and ops.count("Scan") == (op == "RNN")
    assert "Loop" not in ops
    node = _layer_node(fused.proto, op)
    if op == "RNN":  # written as a Scan
        assert node.attribute[0].g.name == BODY
        assert node.doc_string == ("RNN with sequence_lens" if mask else "RNN")
    else:
        assert (len(node.input) > 4 and node.input[4] != "") == (mask is not None)
    (spec,) = fused.inputs
    steps = time_steps or spec.shape[1]
    lengths = batch_lengths if batch_lengths is not None else [0, *range(1, steps + 1)]
    if mask is None:
        data = sample_inputs([spec], 5, time=steps, seed=0).inputs[spec.name]
    else:
        data = _post_padded(mask, spec, lengths, steps)
    _assert_equals_keras(model, fused, {spec.name: data})
    return fused


def _assert_equals_keras(model, converted, data):
    """Each output of the ONNX graph on ``data`` equals Keras' eager output."""
    names = [output.name for output in converted.outputs]
    actual = dict(zip(names, _session(converted.proto).run(names, data), strict=True))
    expected = keras_outputs(model, data)
    assert set(actual) == set(expected)
    for name in names:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5, rtol=0, err_msg=name)


def _layer_node(proto: onnx.ModelProto, op: str) -> onnx.NodeProto:
    """The recurrent layer's node: its fused op, or the Scan an RNN op is written as."""
    if op == "RNN":
        (node,) = [n for n in proto.graph.node if n.op_type == "Scan"]
    else:
        (node,) = [n for n in proto.graph.node if n.op_type == op]
    return node


def test_zoo_masked_classifier_fuses_and_equals_keras(trained_zoo):
    _fused_equals_keras(trained_zoo["masked_lstm"].model)


def test_tagger_returning_sequences_and_states_equals_keras():
    keras.utils.set_random_seed(2)
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(x)
    y, state_h, state_c = keras.layers.LSTM(
        5, return_sequences=True, return_state=True, name="rnn"
    )(h)
    model = keras.Model(x, [keras.layers.Dense(2, name="scores")(y), state_h, state_c])
    fused = _fused_equals_keras(model, time_steps=9)
    assert [output.name for output in fused.outputs] == ["scores", "rnn_h", "rnn_c"]
    # the model itself is untouched: it fuses again
    assert isinstance(fuse_recurrent(model, find_mask(model), opset=17), FusedGraph)


def test_last_output_with_states_and_a_mask_value_other_than_zero():
    keras.utils.set_random_seed(3)
    x = keras.Input((7, 4), name="steps")
    h = keras.layers.Masking(-1.0)(x)
    last, state_h, state_c = keras.layers.LSTM(6, return_state=True, name="rnn")(h)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(last)
    _fused_equals_keras(keras.Model(x, [out, state_h, state_c]))


def test_seed_classifier_with_dropout_fuses_and_equals_keras():
    """The seed's shape and dropout (inactive at inference) become the fused
    LSTM op, equal to Keras on post-padded rows; the general export keeps a
    ``Loop`` (speed is measured by ``parity bench``, not here)."""
    model = models.get("masked_lstm").build("seed")
    lengths = np.random.default_rng(0).integers(20, 46, 16)
    fused = _fused_equals_keras(model, batch_lengths=lengths)
    assert any(node.op_type == "LSTM" for node in fused.proto.graph.node)
    general = keras_to_onnx(model, opset=17)
    assert any(node.op_type == "Loop" for node in general.proto.graph.node)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("masked", [True, False])
def test_gru_is_the_fused_gru_op(reset_after, masked):
    keras.utils.set_random_seed(4)
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(x) if masked else x
    y, state = keras.layers.GRU(
        5, reset_after=reset_after, return_sequences=True, return_state=True, name="rnn"
    )(h)
    model = keras.Model(x, [keras.layers.Dense(2, name="scores")(y), state])
    fused = _fused_equals_keras(model, time_steps=8, op="GRU")
    (gru,) = [node for node in fused.proto.graph.node if node.op_type == "GRU"]
    (linear,) = [a.i for a in gru.attribute if a.name == "linear_before_reset"]
    assert linear == int(reset_after)
    assert [output.name for output in fused.outputs] == ["scores", "rnn_h"]


@pytest.mark.parametrize("masked", [True, False])
def test_simple_rnn_is_the_fused_rnn_op(masked):
    keras.utils.set_random_seed(5)
    x = keras.Input((6, 3), name="steps")
    h = keras.layers.Masking(0.0)(x) if masked else x
    last = keras.layers.SimpleRNN(4, activation="relu", name="rnn")(h)
    fused = _fused_equals_keras(keras.Model(x, keras.layers.Dense(2)(last)), op="RNN")
    # unmasked, the last output is the final state: the scan writes no output per step
    assert len(_layer_node(fused.proto, "RNN").output) == (2 if masked else 1)


def test_hard_sigmoid_and_relu_lstm_without_bias_is_fused():
    """Keras 3's hard_sigmoid is x / 6 + 0.5 clipped: ONNX's HardSigmoid with
    alpha 1/6, not its default 0.2."""
    keras.utils.set_random_seed(6)
    x = keras.Input((None, 3), name="steps")
    layer = keras.layers.LSTM(
        4, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False, name="rnn"
    )
    model = keras.Model(x, layer(keras.layers.Masking(0.0)(x)))
    _fused_equals_keras(model, time_steps=7)
    general = keras_to_onnx(model, opset=17).proto  # tf2onnx alone makes it a Loop
    assert any(node.op_type == "Loop" for node in general.graph.node)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_embedding_with_mask_zero_gets_lengths_from_token_ids(kind):
    keras.utils.set_random_seed(7)
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(10, 3, mask_zero=True, name="embed")(x)
    y = getattr(keras.layers, kind)(4, return_sequences=True, name="rnn")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="tags")(y))
    _fused_equals_keras(model, time_steps=6, op=kind)


def _stacked():
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Masking(0.0)(x))
    return keras.Model(x, keras.layers.LSTM(2)(h))


def _initial_state():
    x = keras.Input((None, 3), name="steps")
    state = [keras.Input((4,), name="h0"), keras.Input((4,), name="c0")]
    y = keras.layers.LSTM(4)(keras.layers.Masking(0.0)(x), initial_state=state)
    return keras.Model([x, *state], y)


def _pooled():  # pooling reads the mask the LSTM passes on
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Masking(0.0)(x))
    return keras.Model(x, keras.layers.GlobalAveragePooling1D()(h))


def _backwards():
    x = keras.Input((None, 3), name="steps")
    return keras.Model(x, keras.layers.LSTM(4, go_backwards=True)(keras.layers.Masking(0.0)(x)))


def _swish():  # an activation ONNX's recurrent ops do not have
    x = keras.Input((None, 3), name="steps")
    return keras.Model(x, keras.layers.GRU(4, activation="swish")(x))


def _masking_after_a_dense():  # a mask the runtime cannot compute from the input
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(keras.layers.Dense(3)(x))
    return keras.Model(x, keras.layers.GRU(4)(h))


def _after_a_dense():  # the recurrent layer does not read the input
    x = keras.Input((None, 3), name="steps")
    return keras.Model(x, keras.layers.SimpleRNN(4)(keras.layers.Dense(3)(x)))


def _stacked_grus():
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.GRU(5, return_sequences=True)(x)
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.GRU(4)(h)))


def _simple_rnn_then_lstm_with_dropout():
    return keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.SimpleRNN(6, return_sequences=True),
            keras.layers.LSTM(4, recurrent_dropout=0.2, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )


def _convolution_then_gru():
    return keras.Sequential(
        [
            keras.Input((None, 3)),
            keras.layers.Conv1D(4, 3, padding="same", activation="relu"),
            keras.layers.GRU(5, reset_after=False),
            keras.layers.Dense(2),
        ]
    )


def _twin_branches():  # two layers of one kind and width reading the same input
    x = keras.Input((None, 3), name="steps")
    a = keras.layers.GRU(4, name="first")(x)
    b = keras.layers.GRU(4, activation="relu", name="second")(x)
    return keras.Model(x, keras.layers.Concatenate()([a, b]))


@pytest.mark.parametrize(
    "build, ops",
    [
        (_after_a_dense, ("RNN",)),
        (_stacked_grus, ("GRU", "GRU")),
        (_simple_rnn_then_lstm_with_dropout, ("RNN", "LSTM")),
        (_convolution_then_gru, ("GRU",)),
        (_twin_branches, ("GRU", "GRU")),
    ],
)
def test_unmasked_recurrent_layers_anywhere_are_fused_and_equal_keras(build, ops):
    """tf2onnx leaves these GRUs, SimpleRNNs and LSTMs with dropout as
    ``Loop``s; every one becomes its op, each written over its own stand-in."""
    keras.utils.set_random_seed(8)
    model = build()
    for layer in model.layers:  # weights that are not the initial ones
        layer.set_weights([w + 0.05 for w in layer.get_weights()])
    found = fuse_recurrent(model, None, opset=17)
    assert isinstance(found, FusedGraph) and found.op_types == ops, found
    graph_ops = [node.op_type for node in found.converted.proto.graph.node]
    assert "Loop" not in graph_ops and graph_ops.count("Scan") == ops.count("RNN")
    data = sample_inputs(found.converted.inputs, 3, time=7, seed=1).inputs
    _assert_equals_keras(model, found.converted, data)


@pytest.mark.parametrize("masked", [False, True])
def test_an_adapted_normalization_is_copied_with_the_mean_it_normalizes_by(masked):
    """The mean lives outside the layer's weights: the stand-in copy's
    ``Normalization`` computes it again from them, so the fused graph
    normalizes as Keras does, before the recurrent layer or after it."""
    normalization = keras.layers.Normalization()
    x = keras.Input((None, 3), name="steps")
    if masked:  # the layer after a masked layer's last output may be any layer
        normalization.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4)))
        model = keras.Model(x, normalization(keras.layers.GRU(4)(keras.layers.Masking(0.0)(x))))
    else:
        normalization.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(16, 5, 3)))
        model = keras.Model(x, keras.layers.GRU(4)(normalization(x)))
    _fused_equals_keras(model, op="GRU", time_steps=6)


class _Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def _custom_layer_after():  # a custom layer may not rebuild from its config
    x = keras.Input((None, 3), name="steps")
    return keras.Model(x, _Scale()(keras.layers.GRU(4)(x)))


def _embedding_then_dense():  # the Dense reads the mask-carrying embeddings
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Dense(3)(keras.layers.Embedding(10, 3, mask_zero=True)(x))
    return keras.Model(x, keras.layers.LSTM(4)(h))


@pytest.mark.parametrize(
    "build, why",
    [
        (_stacked, "(LSTM) is recurrent"),
        (_initial_state, "the model has 3 inputs"),
        (_pooled, "(GlobalAveragePooling1D) may read the mask"),
        (_backwards, "go_backwards=True"),
        (_swish, "activation 'silu' has no ONNX equivalent"),
        (_masking_after_a_dense, "(Masking) masks a value that is not the input"),
        (_custom_layer_after, "is a custom layer"),
        (_embedding_then_dense, "Dense is not one of LSTM, GRU, SimpleRNN"),
    ],
)
def test_other_forms_fall_back_to_the_general_graph_saying_why(build, why):
    found = fuse_recurrent(build(), find_mask(build()), opset=17)
    assert isinstance(found, NotFused) and why in found.reason, found


def test_the_general_masked_graph_says_why_it_is_not_fused(tmp_path):
    from parity.exporter import export_model

    manifest = export_model(_backwards(), tmp_path / "bundle")
    (note,) = [note for note in manifest.notes if "general masked graph" in note]
    assert "not fused because layer" in note and "go_backwards=True" in note


def test_runtime_refuses_inputs_the_fused_graph_would_get_wrong(exported_zoo):
    _, manifest, path = exported_zoo["masked_lstm"]
    assert manifest.mask.fused and manifest.mask.padding == "post"
    bundle = runtime.load_bundle(path, device="cpu")
    spec = manifest.graph("model").inputs[0]
    x = sample_inputs([spec], 2, seed=0, mask=manifest.mask, lengths=np.array([3, 5])).inputs
    pre = np.flip(x[spec.name], axis=1).copy()  # pre-padded
    with pytest.raises(InputError, match="after a padded one"):
        bundle.run({spec.name: pre})


def test_bench_times_each_fused_op_against_tf2onnx_loop(tmp_path):
    from parity.bench.fusion import LAYERS, ORT_FUSED, ORT_GENERAL, fusion_case
    from parity.bench.result import Settings

    case = fusion_case(Settings(preset="tiny", batches=(3,), repeats=1, warmup=0), tmp_path)
    found = {(row.model, row.method) for row in case.rows}
    for kind in LAYERS:
        assert {(f"masked_{kind.lower()}", m) for m in (ORT_FUSED, ORT_GENERAL)} <= found
    assert all(row.timing and row.flops and "differs" not in row.note for row in case.rows)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_masked_op_runs_the_longest_rows_steps_only_and_equals_the_untrimmed_op(kind):
    keras.utils.set_random_seed(4)
    x = keras.Input((9, 3), name="steps")
    h = keras.layers.Masking(0.0)(x)
    layer = getattr(keras.layers, kind)(5, return_sequences=True, return_state=True, name="rnn")
    y, *states = layer(h)
    model = keras.Model(x, [keras.layers.Dense(2, name="scores")(y), *states])
    op = {"SimpleRNN": "RNN"}.get(kind, kind)
    fused = _fused_equals_keras(model, batch_lengths=[0, 1, 4, 2], op=op)
    trimmed, (spec,) = fused.proto, fused.inputs
    (cut,) = [n for n in trimmed.graph.node if "parity_fused/mask/x_run" in n.output]
    assert cut.op_type == "Slice"
    # the layer's node (the RNN's scan through its input projection) reads the cut
    node = _layer_node(trimmed, op)
    if op == "RNN":
        (node,) = [n for n in trimmed.graph.node if n.input[1:] == [f"{node.name}/W_t"]]
    assert node.input[0] == cut.output[0]
    # the same graph made to run every step: at least 9 steps instead of at least 1
    untrimmed = onnx.ModelProto()
    untrimmed.CopyFrom(trimmed)
    (least,) = [i for i in untrimmed.graph.initializer if i.name == "parity_fused/mask/one"]
    least.CopyFrom(onnx.numpy_helper.from_array(np.array([9], np.int64), least.name))
    names = [output.name for output in trimmed.graph.output]
    for lengths in ([0, 1, 4, 2], [0, 0], [9, 3]):
        data = _post_padded(find_mask(model), spec, lengths, 9, seed=len(lengths))
        got = _session(trimmed).run(names, {spec.name: data})
        full = _session(untrimmed).run(names, {spec.name: data})
        for name, a, b in zip(names, got, full, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, lengths {lengths}")


@pytest.mark.parametrize("opset", [14, 18])
@pytest.mark.parametrize("kind", ["LSTM", "SimpleRNN"])
def test_masked_tagger_fuses_at_the_first_and_last_supported_opsets(kind, opset):
    """Every node the fusion writes exists at opset 14 (``Shape`` has no
    ``start``/``end`` before 15)."""
    keras.utils.set_random_seed(6)
    x = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(30, 4, mask_zero=True)(x)
    y, state = getattr(keras.layers, kind)(5, return_sequences=True, return_state=True)(h)[:2]
    model = keras.Model(x, [keras.layers.Dense(3, name="tags")(y), state])
    _fused_equals_keras(
        model,
        batch_lengths=[0, 2, 7],
        time_steps=7,
        op={"SimpleRNN": "RNN"}.get(kind, kind),
        opset=opset,
    )


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_masked_last_output_is_the_state_and_no_sequence_is_written(kind):
    """A masked layer that returns its last output only: that output is the
    op's Y_h, so the op writes no Y and nothing fills its padded steps."""
    keras.utils.set_random_seed(5)
    x = keras.Input((9, 3), name="steps")
    last = getattr(keras.layers, kind)(4, name="rnn")(keras.layers.Masking(0.0)(x))
    model = keras.Model(x, keras.layers.Dense(2, name="scores")(last))
    op = {"SimpleRNN": "RNN"}.get(kind, kind)
    fused = _fused_equals_keras(model, batch_lengths=[0, 1, 4, 2, 9], op=op)
    node = _layer_node(fused.proto, op)
    ops = {node.op_type for node in fused.proto.graph.node}
    if op == "RNN":  # the scan's steps are read for the state at each row's length only
        assert "Pad" not in ops and "Range" not in ops
    else:
        assert node.output[0] == "" and not {"Where", "Pad"} & ops


def test_a_trained_simple_rnn_exports_simplified(tmp_path):
    """The scan reads its projected input as a node input: onnx-simplifier's
    fusions rewire what a subgraph reads from outside only through such
    inputs (an unmasked SimpleRNN with a bias failed to simplify as a Loop)."""
    from parity.exporter import export_model

    model = keras.Sequential([keras.Input((None, 4)), keras.layers.SimpleRNN(8)])
    kernel, recurrent, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([kernel, recurrent, bias + 0.1])
    manifest = export_model(model, tmp_path / "bundle")
    assert not [note for note in manifest.notes if "left as tf2onnx wrote it" in note]
    assert any("RNN op written as a Scan" in note for note in manifest.notes)


@pytest.mark.parametrize("masked", [False, True])
def test_a_fused_graph_that_strays_from_keras_is_given_up(monkeypatch, tmp_path, masked):
    """Export runs the fused graph on the golden inputs: with the fused op's
    bias written wrong (injected), the graph strays from Keras; export keeps
    tf2onnx's graph."""
    import dataclasses

    from parity.exporter import export_model, fused

    written = fused.fused_op

    def wrong_bias(layer):
        op = written(layer)
        return dataclasses.replace(op, bias=op.bias + 1.0)

    monkeypatch.setattr(fused, "fused_op", wrong_bias)
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(x) if masked else x
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GRU(4)(h)))
    manifest = export_model(model, tmp_path / "bundle")
    assert any("strayed from Keras on the golden inputs" in note for note in manifest.notes)
    graph = onnx.load(tmp_path / "bundle" / "model.onnx")
    assert "GRU" not in {node.op_type for node in graph.graph.node}
    assert manifest.mask is None or not manifest.mask.fused
    # the graph kept matches its golden data
    assert check(tmp_path / "bundle", options=VerifyOptions(device="cpu")).passed


def test_a_stand_in_copy_that_does_not_convert_keeps_the_general_graph(monkeypatch, tmp_path):
    """A conversion failure of the copy (injected: tf2onnx refusing it) is a
    reason not to fuse, not an export error: the model itself converts."""
    from parity.exporter import export_model, fused

    def refuse(model, **options):
        raise ParityError(f"tf2onnx cannot convert model {model.name!r}: injected")

    monkeypatch.setattr(fused, "keras_to_onnx", refuse)
    model = _stacked_grus()
    found = fuse_recurrent(model, None, opset=17)
    assert isinstance(found, NotFused) and "did not convert" in found.reason
    export_model(model, tmp_path / "bundle")
    graph = onnx.load(tmp_path / "bundle" / "model.onnx")
    assert "GRU" not in {node.op_type for node in graph.graph.node}


def test_an_unmasked_model_kept_general_says_why(tmp_path):
    from parity.exporter import export_model

    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
    manifest = export_model(keras.Model(x, keras.layers.GRU(4)(h)), tmp_path / "bundle")
    (note,) = [note for note in manifest.notes if "recurrent layers are tf2onnx's graph" in note]
    assert "(Bidirectional) is recurrent, a wrapper or a model" in note
    plain = export_model(keras.Model(x, keras.layers.Dense(2)(x)), tmp_path / "plain")
    assert not [note for note in plain.notes if "recurrent" in note]  # no recurrent layer
