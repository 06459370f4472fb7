"""Localisation: a fault injected into one layer of an exported graph is
named, with its graph and step, as the first divergent layer.

TensorFlow's side of each model is computed once (``layer_reference``); each
damaged copy of its bundle is then localised by ONNX Runtime alone
(``replay_layers``). Each weight is found in the graph by its values (any
order: gates reordered, transposed), never by the names localisation reads,
and scaled by 1.01; a Sigmoid becomes a HardSigmoid, as a graph node and as a
recurrent op's gate activation.
"""

import itertools
from dataclasses import dataclass

import keras
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from parity import runtime
from parity.cli.app import cli
from parity.cli.support_matrix import cases
from parity.exporter import export_model
from parity.exporter.keras_graph import as_functional
from parity.runtime.bundle_format.manifest import read_manifest
from parity.verify import VerifyOptions, check
from parity.verify.localise import layer_reference, replay_layers
from tests import faults

FACTOR = 1.01
POSITIONS = ("first", "middle", "last")
_COPIES = itertools.count()


@dataclass(frozen=True)
class Subject:
    """A bundle, the Keras model it was exported from, and TensorFlow's layer outputs."""

    path: object
    model: object
    reference: object


def _subject(path, model) -> Subject:
    bundle = runtime.load_bundle(path, device="cpu")
    return Subject(path, model, layer_reference(bundle, model))


@pytest.fixture(scope="module")
def zoo(exported_zoo):
    """name -> Subject, TensorFlow's side computed the first time a model is asked for."""
    subjects = {}

    def get(name: str) -> Subject:
        if name not in subjects:
            trained, _, path = exported_zoo[name]
            subjects[name] = _subject(path, as_functional(trained.model))
        return subjects[name]

    return get


def _localised(subject: Subject, tmp_path, fault, graph: str = "model"):
    """The localisation of a copy of the subject's bundle that ``fault`` damaged."""
    damaged = faults.damaged_copy(subject.path, tmp_path / f"d{next(_COPIES)}", fault, graph=graph)
    return replay_layers(runtime.load_bundle(damaged, device="cpu"), subject.reference)


def _holding(path, graph: str, values: list[np.ndarray], prefix: str = "") -> str:
    """The initializer of ``graph`` (its subgraphs too) that holds ``values``,
    in any order; several arrays are one initializer (a bidirectional op's two
    directions) or, failing that, the first alone."""
    proto = onnx.load(path / read_manifest(path).graphs[graph].file)
    for wanted in (values, values[:1]):
        target = np.sort(np.concatenate([np.ravel(v) for v in wanted]))
        for init in faults.initializers(proto):
            value = np.sort(numpy_helper.to_array(init).ravel())
            same = value.shape == target.shape and np.allclose(value, target, rtol=0, atol=1e-7)
            if init.name.startswith(prefix) and same:
                return init.name
    raise LookupError(f"no initializer of {graph} holds those values")


def _weights(layer, which: int = 0) -> list[np.ndarray]:
    """A layer's ``which``-th weight (kernel, recurrent kernel...), each direction's."""
    parts = (
        [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
    )
    return [np.asarray(part.weights[which]) for part in parts]


def _positions(model) -> dict[str, str]:
    """The first, a middle and the last layer with weights."""
    weighted = [layer.name for layer in model.layers if layer.weights]
    return {"first": weighted[0], "middle": weighted[len(weighted) // 2], "last": weighted[-1]}


def _assert_names(localisation, layer: str, graph: str = "model", step=None):
    named = (localisation.first_divergent_layer, localisation.graph, localisation.step)
    assert named == (layer, graph, step), "\n".join(localisation.lines())


ONE_GRAPH = ["conv_rows_lstm", "td_cnn_lstm", "masked_lstm", "seq_tagger"]


@pytest.mark.parametrize("name", ONE_GRAPH)
@pytest.mark.parametrize("position", POSITIONS)
def test_scaled_layer_weight_is_localised_to_its_layer(zoo, tmp_path, name, position):
    subject = zoo(name)
    layer = _positions(subject.model)[position]
    weight = _holding(subject.path, "model", _weights(subject.model.get_layer(layer)))
    found = _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR))
    _assert_names(found, layer)
    assert found.first.ratio > found.first.limit
    assert all(row.status != "diverges" for row in found.rows[: found.rows.index(found.first)])


# How each layer's output is found in the zoo's graphs: "-" has no tensor of its own
MAPPED_BY = {
    "conv_rows_lstm": {"conv2d": "tf name", "conv2d_1": "tf name", "max_pooling2d": "tf name",
                       "reshape": "tf name", "dropout": "-", "lstm": "recurrent op",
                       "dense": "tf name", "dense_1": "tf name", "probs": "graph output"},
    "td_cnn_lstm": {"time_distributed": "scope", "time_distributed_1": "scope",
                    "time_distributed_2": "scope", "lstm_1": "tf name", "probs": "graph output"},
    "masked_lstm": {"masking": "-", "lstm_2": "recurrent op", "probs": "graph output"},
    "seq_tagger": {"lstm_3": "tf name", "tags": "graph output"},
}  # fmt: skip


@pytest.mark.parametrize("name", ONE_GRAPH)
def test_clean_bundle_has_no_divergent_layer_and_hard_sigmoid_gates_are_localised(
    zoo, tmp_path, name
):
    subject = zoo(name)
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    assert {row.layer: row.mapped_by for row in clean.rows} == MAPPED_BY[name]
    for row in clean.rows:
        folded = row.status.startswith("no tensor (folded into ")
        assert folded if row.mapped_by == "-" else row.status == "agrees", row
    recurrent = next(layer for layer in subject.model.layers if hasattr(layer, "cell"))
    weight = _holding(subject.path, "model", _weights(recurrent))
    _assert_names(_localised(subject, tmp_path, faults.hard_sigmoid_gates(weight)), recurrent.name)


# (graph damaged, initializer prefix in it, layer, which weight) -> (graph, step) named
SEQ2SEQ_FAULTS = {
    "first": [("encoder", "", "encoder_lstm_1", 0, "encoder", None),
              ("loop", "encoder/", "encoder_lstm_1", 0, "loop", None)],
    "middle": [("step", "", "decoder_lstm_1", 0, "step", None),
               ("loop", "step/", "decoder_lstm_1", 0, "loop", 0),
               # its state starts from zeros: a recurrent kernel shows from step 1 on
               ("loop", "step/", "decoder_lstm_2", 1, "loop", 1)],
    "last": [("step", "", "forecast", 0, "step", None),
             ("loop", "step/", "forecast", 0, "loop", 0)],
}  # fmt: skip


@pytest.mark.parametrize("position", POSITIONS)
def test_seq2seq_fault_is_localised_to_its_graph_step_and_layer(zoo, tmp_path, position):
    subject = zoo("sine_seq2seq")
    for graph, prefix, layer, which, named, step in SEQ2SEQ_FAULTS[position]:
        values = _weights(subject.model.get_layer(layer), which)
        weight = _holding(subject.path, graph, values, prefix)
        found = _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR), graph)
        _assert_names(found, layer, named, step)


def test_seq2seq_clean_bundle_and_hard_sigmoid_gates(zoo, tmp_path):
    subject = zoo("sine_seq2seq")
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    assert {(row.graph, row.step) for row in clean.rows} >= {
        ("encoder", None), ("step", None), ("step", 0), ("loop", None), ("loop", 9)
    }  # fmt: skip
    floors = {}  # a generation's floor at step t is the layer's largest noise up to t
    for row in clean.rows:
        if row.step is not None and row.noise_floor is not None:
            key = (row.graph, row.layer, row.output)
            assert row.noise_floor >= floors.get(key, 0.0), row
            floors[key] = row.noise_floor
    gates = (("step", "", "decoder_lstm_2", "step"), ("loop", "encoder/", "encoder_lstm_2", "loop"))
    for graph, prefix, layer, named in gates:
        weight = _holding(subject.path, graph, _weights(subject.model.get_layer(layer)), prefix)
        found = _localised(subject, tmp_path, faults.hard_sigmoid_gates(weight), graph)
        _assert_names(found, layer, named)


# --- the coverage models, with a Dense after each output --------------------------------

# One coverage configuration for each form its recurrent layer takes in the graph and each
# set of outputs it returns: parity's LSTM, GRU and RNN-as-Scan ops, with and without
# sequence_lens, their states, a reversed op, tf2onnx's bidirectional op and Loops, an
# unrolled layer, states from inputs, an Embedding. Exporting every configuration would
# take this file past two minutes; each passes (run with every name of cases() here).
COVERED = (
    "LSTM last output mask=none",
    "LSTM return_sequences+return_state mask=none",
    "LSTM return_sequences mask=Masking",
    "LSTM go_backwards mask=none",
    "LSTM go_backwards mask=Masking",
    "LSTM unroll=True (fixed time 6) mask=none",
    "LSTM initial_state from inputs mask=Masking",
    "GRU return_state mask=none",
    "GRU(reset_after=False) return_sequences mask=Embedding(mask_zero)",
    "GRU initial_state from inputs mask=none",
    "SimpleRNN last output mask=none",
    "SimpleRNN return_sequences+return_state mask=none",
    "SimpleRNN return_sequences mask=Masking",
    "Bidirectional(LSTM) merge_mode=concat, return_sequences mask=Masking",
    "Bidirectional(LSTM) merge_mode=None, return_sequences mask=Masking",
    "Bidirectional(LSTM) return_state mask=none",
)
COVERAGE = {case.name: case for case in cases() if case.name in COVERED}


def _with_heads(case) -> keras.Model:
    """The case's model with a Dense after each output: every output of its
    recurrent layer (a state, a direction's sequence) is inside the graph."""
    base = case.build()
    keras.utils.set_random_seed(1)
    heads = [keras.layers.Dense(3, name=f"head_{i}")(out) for i, out in enumerate(base.outputs)]
    return keras.Model(base.inputs, heads, name="covered")


def test_the_coverage_configurations_named_exist():
    assert set(COVERAGE) == set(COVERED)


@pytest.mark.parametrize("name", COVERED)
def test_coverage_model_faults_are_localised(tmp_path, name):
    model = _with_heads(COVERAGE[name])
    export_model(model, tmp_path / "bundle")
    subject = _subject(tmp_path / "bundle", model)
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    for layer in dict.fromkeys(_positions(model).values()):
        weight = _holding(subject.path, "model", _weights(model.get_layer(layer)))
        found = _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR))
        _assert_names(found, layer)
    proto = onnx.load(subject.path / "model.onnx")
    ops = {node.op_type: node for node in proto.graph.node}
    if "LSTM" in ops or "GRU" in ops:
        weight = (ops.get("LSTM") or ops["GRU"]).input[1]
        _assert_names(_localised(subject, tmp_path, faults.hard_sigmoid_gates(weight)), "rnn")
    in_body = [
        n for g in faults.all_graphs(proto.graph)[1:] for n in g.node if n.op_type == "Sigmoid"
    ]
    if "Loop" in ops and in_body:
        _assert_names(_localised(subject, tmp_path, faults.hard_sigmoid_node(in_body=True)), "rnn")


def _mixed() -> keras.Model:
    """A convolution whose output has equal sizes (channels-first or not: its
    producer decides), two stacked GRUs with equal weights (which the graph
    stores once), and a Dense whose sigmoid is a graph node."""
    keras.utils.set_random_seed(2)
    x = keras.Input((4, 4, 4), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    h = keras.layers.Reshape((4, 16), name="rows")(h)
    gru = keras.layers.GRU(16, return_sequences=True, name="gru")
    twin = keras.layers.GRU(16, return_sequences=True, name="gru_twin")
    h = twin(gru(h))
    twin.set_weights(gru.get_weights())
    h = keras.layers.Dense(5, activation="sigmoid", name="gate")(h)
    return keras.Model(x, keras.layers.Dense(3, name="out")(h), name="mixed")


def test_equal_sizes_equal_weights_and_a_sigmoid_node_are_localised(tmp_path):
    model = _mixed()
    export_model(model, tmp_path / "bundle")
    subject = _subject(tmp_path / "bundle", model)
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    _assert_names(_localised(subject, tmp_path, faults.hard_sigmoid_node()), "gate")
    for layer in ("conv", "gru"):  # the twins' one weight: gru is the first it damages
        weight = _holding(subject.path, "model", _weights(model.get_layer(layer)))
        _assert_names(
            _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR)), layer
        )
    for nth, layer in enumerate(("gru", "gru_twin")):
        _assert_names(_localised(subject, tmp_path, faults.hard_sigmoid_gates(weight, nth)), layer)


def test_bidirectional_op_without_merge_is_localised(tmp_path):
    """tf2onnx's bidirectional LSTM op: merge_mode=None gives each direction's
    sequence, each a direction of the op's Y."""
    keras.utils.set_random_seed(3)
    x = keras.Input((None, 3), name="sequence")
    forward, backward = keras.layers.Bidirectional(
        keras.layers.LSTM(4, return_sequences=True), merge_mode=None, name="bilstm"
    )(x)
    outputs = [
        keras.layers.Dense(2, name=f"head_{i}")(h) for i, h in enumerate((forward, backward))
    ]
    model = keras.Model(x, outputs, name="unmerged")
    export_model(model, tmp_path / "bundle")
    subject = _subject(tmp_path / "bundle", model)
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    forward, backward = (row for row in clean.rows if row.layer == "bilstm")
    assert forward.onnx_tensor and backward.layout == "op Y"
    weight = _holding(subject.path, "model", _weights(model.get_layer("bilstm")))
    found = _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR))
    _assert_names(found, "bilstm")


def test_a_tensor_the_converter_moved_is_not_the_layer_s(tmp_path):
    """tf2onnx pushes the transpose that ends a TimeDistributed(Dense) on a
    time-major sequence past the ReLU after it, both nodes keeping their
    names: the tensor named after the Dense then holds the ReLU's value. It
    is not taken for the Dense's (whose row would diverge on a clean bundle);
    a fault in the Dense shows at the ReLU."""
    keras.utils.set_random_seed(4)
    x = keras.Input((None, 5), name="frames")
    h = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True), name="bigru")(x)
    h = keras.layers.TimeDistributed(keras.layers.Dense(4), name="dense")(h)
    h = keras.layers.Activation("relu", name="dense_relu")(h)
    y = keras.layers.TimeDistributed(keras.layers.Dense(3), name="out")(h)
    model = keras.Model(x, y, name="moved")
    export_model(model, tmp_path / "bundle")
    subject = _subject(tmp_path / "bundle", model)
    clean = replay_layers(runtime.load_bundle(subject.path, device="cpu"), subject.reference)
    assert clean.first_divergent_layer is None, "\n".join(clean.lines())
    (dense,) = (row for row in clean.rows if row.layer == "dense")
    assert dense.status == "no tensor (folded into dense_relu)" and "moved" in dense.note, dense
    weight = _holding(subject.path, "model", _weights(model.get_layer("dense").layer))
    found = _localised(subject, tmp_path, faults.scale_initializer(weight, FACTOR))
    _assert_names(found, "dense_relu")


# --- in verification ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged_masked(exported_zoo, tmp_path_factory):
    """masked_lstm's bundle with its LSTM's kernel scaled, and the Keras file."""
    trained, _, path = exported_zoo["masked_lstm"]
    out = tmp_path_factory.mktemp("damaged") / "masked_lstm"
    weight = _holding(path, "model", _weights(trained.model.get_layer("lstm_2")))
    faults.damaged_copy(path, out, faults.scale_initializer(weight, FACTOR))
    return trained.path, path, out


OPTIONS = VerifyOptions(device="cpu", batches=(3,), times=(7,))


def test_failing_check_reports_the_first_divergent_layer(damaged_masked):
    source, _, damaged = damaged_masked
    report = check(damaged, source, OPTIONS)
    assert not report.passed
    assert report.localisation.first_divergent_layer == "lstm_2"
    table = report.table()
    assert "localisation (" in table and "first divergent layer 'lstm_2' (LSTM)" in table
    written = report.to_dict()["localisation"]
    assert (written["first_divergent_layer"], written["graph"], written["step"]) == (
        "lstm_2",
        "model",
        None,
    )
    rows = {row["layer"]: row for row in written["rows"]}
    assert rows["masking"]["status"] == "no tensor (folded into lstm_2)"
    assert rows["lstm_2"]["status"] == "diverges" and rows["lstm_2"]["ratio"] > 10
    assert {"error", "noise_floor", "ratio", "limit"} <= set(rows["lstm_2"])


def test_localisation_runs_on_failure_by_default_and_on_demand(damaged_masked):
    source, clean, damaged = damaged_masked
    assert check(clean, source, OPTIONS).localisation is None
    asked = check(clean, source, VerifyOptions(device="cpu", batches=(3,), localise=True))
    assert asked.passed and asked.localisation.first_divergent_layer is None
    assert asked.localisation.rows and not asked.localisation.reason
    never = check(damaged, source, VerifyOptions(device="cpu", batches=(3,), localise=False))
    assert not never.passed and never.localisation is None
    with pytest.raises(runtime.errors.ParameterError, match="localise"):
        check(clean, None, VerifyOptions(localise=True))


def test_a_localisation_that_cannot_run_says_why_and_the_gate_still_fails(
    damaged_masked, monkeypatch
):
    import parity.verify.localise as localise

    def unsupported(*args, **kwargs):
        raise ValueError("no layers here")

    monkeypatch.setattr(localise, "layer_reference", unsupported)
    source, _, damaged = damaged_masked
    report = check(damaged, source, OPTIONS)
    assert not report.passed
    assert report.localisation.first_divergent_layer is None
    assert "no layers here" in report.localisation.reason
    assert "localisation could not run: " in report.table()


def test_a_saved_model_has_no_layers_to_localise(tmp_path):
    from parity.exporter import load_keras
    from parity.verify.localise import localise

    x = keras.Input((None, 3), name="sequence")
    keras.Model(x, keras.layers.GRU(2)(x)).export(tmp_path / "saved", verbose=False)
    found = localise(tmp_path / "no bundle needed", load_keras(tmp_path / "saved"))
    assert found.first_divergent_layer is None and "SavedModel" in found.reason
    line = f"localisation (0.00 s): localisation could not run: {found.reason}"
    assert found.lines(width=200) == [line]


def test_command_line_localises_on_failure_and_with_the_flag(damaged_masked, tmp_path):
    source, clean, damaged = damaged_masked
    runner = CliRunner()
    args = ["verify", str(source), "--batch", "3", "--device", "cpu", "-q"]
    failed = runner.invoke(cli, [*args, str(damaged), "--json", str(tmp_path / "r.json")])
    assert failed.exit_code == 1, failed.output
    assert "first divergent layer 'lstm_2'" in failed.output
    assert '"first_divergent_layer": "lstm_2"' in (tmp_path / "r.json").read_text()
    passed = runner.invoke(cli, [*args, str(clean), "--localise"])
    assert passed.exit_code == 0, passed.output
    assert "no divergent layer" in passed.output
    quiet = runner.invoke(cli, [*args, str(damaged), "--no-localise"])
    assert quiet.exit_code == 1 and "localisation" not in quiet.output
    alone = runner.invoke(cli, ["verify", str(clean), "--localise"])
    assert alone.exit_code == 2 and "--localise: needs the Keras model" in alone.output
