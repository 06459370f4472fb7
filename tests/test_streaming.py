"""Stream bundles: a stateful model (or any forward recurrent model with
``--streaming``) exported as one graph that takes and returns every recurrent
state, run chunk by chunk by the runtime and verified chunk by chunk against
Keras."""

from __future__ import annotations

import copy
import json
import threading
import typing
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity import runtime
from parity.cli.app import cli
from parity.runtime.bundle_format.manifest import MANIFEST_NAME, parse_manifest
from parity.runtime.errors import BundleError, InputError, ParameterError
from parity.runtime.stream import run_schedule
from tests import faults

FIXTURES = Path(__file__).parent / "fixtures" / "keras2"


def _cli(*args):
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def _perturbed(model, seed=0):
    """Weights far from their initial values, so that the states move."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def issue_model(stateful: bool = True):
    """The issue's model: Input(batch_shape=(3, None, 5)) -> Masking ->
    SimpleRNN(7, stateful=True) -> Dense."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input(batch_shape=(3 if stateful else None, None, 5), name="x")
    h = keras.layers.Masking(0.0)(x)
    h = keras.layers.SimpleRNN(7, stateful=stateful, name="rnn")(h)
    return _perturbed(keras.Model(x, keras.layers.Dense(2, name="head")(h), name="issue"))


def stacked_tagger():
    """Stateless LSTM -> GRU -> SimpleRNN tagger with a Dense head per step:
    every kind of fused op, streamed on request."""
    import keras

    keras.utils.set_random_seed(1)
    x = keras.Input((None, 4), name="x")
    h = keras.layers.LSTM(6, return_sequences=True, name="lstm")(x)
    h = keras.layers.GRU(5, return_sequences=True, name="gru")(h)
    h = keras.layers.SimpleRNN(4, return_sequences=True, name="rnn")(h)
    tags = keras.layers.Dense(3, activation="softmax", name="tags")(h)
    return _perturbed(keras.Model(x, tags, name="tagger"), seed=1)


@pytest.fixture(scope="module")
def issue(tmp_path_factory):
    """The issue's model saved, and exported by the command line."""
    folder = tmp_path_factory.mktemp("issue")
    model = issue_model()
    model.save(folder / "issue.keras")
    result = _cli("export", folder / "issue.keras", folder / "bundle")
    assert result.exit_code == 0, result.output
    return folder / "issue.keras", folder / "bundle", result.output


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    from parity.exporter import export_model

    model = stacked_tagger()
    folder = tmp_path_factory.mktemp("tagger") / "bundle"
    manifest = export_model(model, folder, streaming=True)
    return model, folder, manifest


def test_the_issues_stateful_simplernn_exports_verifies_and_replays(issue):
    model, bundle, output = issue
    assert "stream (stateful): states state.rnn.h (7)" in output
    manifest = runtime.read_manifest(bundle)
    spec = manifest.streaming
    assert (spec.source, spec.keras_batch, spec.inputs) == ("stateful", 3, ("x",))
    assert [(o.name, o.per) for o in spec.outputs] == [("head", "chunk")]
    assert [(s.layer, s.kind, s.size, s.input, s.output, s.reset) for s in spec.states] == [
        ("rnn", "h", 7, "state.rnn.h", "state.rnn.h.next", "zeros")
    ]
    assert "masked step keeps every state" in spec.masked_steps
    graph = manifest.graph("stream")
    assert graph.input("x").shape == ("batch", "time", 5)  # batch and time dynamic
    picture = bundle.parent / "report.png"
    verified = _cli(
        "verify", model, bundle, "-q", "--json", bundle.parent / "report.json", "--plot", picture
    )
    assert verified.exit_code == 0, verified.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((bundle.parent / "report.json").read_text())
    names = [check["name"] for check in report["checks"]]
    for schedule in ("whole", "one step at a time", "random chunks", "random chunks, rows reset"):
        assert f"stream {schedule}/head" in names
        assert f"stream {schedule}/final states" in names
    assert "onnxruntime: stream rows reset against a fresh stream/head" in names
    assert "tensorflow: stream random chunks against one call/final states" in names
    curves = {curve["name"]: curve for curve in report["generations"]}
    per_chunk = curves["stream one step at a time/head per chunk"]
    assert per_chunk["rule"] == "noise" and len(per_chunk["error_per_step"]) == 17
    assert max(per_chunk["used_per_step"]) < 1  # each chunk within its limit
    golden = _cli("verify", bundle, "-q")
    assert golden.exit_code == 0, golden.output
    assert "golden stream_chunks/head" in golden.output


def test_the_manifest_section_reads_back_and_is_checked(issue):
    _, bundle, _ = issue
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest = parse_manifest(data)
    assert parse_manifest(json.loads(manifest.to_json())) == manifest
    bad = [
        (("states", 0, "size"), 8, "streaming.states[0].size"),
        (("states", 0, "input"), "x", "streaming.states[0].input"),
        (("outputs", 0, "per"), "step", "streaming.outputs[0].per"),
        (("inputs", 0), "state.rnn.h", "streaming.inputs[0]"),
        (("source",), "frozen", "streaming.source"),
        (("extra",), 1, "unknown field 'extra'"),
    ]
    for path, value, words in bad:
        changed = copy.deepcopy(data)
        target = changed["streaming"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(BundleError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_manifest(changed)
    plain = {key: value for key, value in data.items() if key != "streaming"}
    assert parse_manifest(plain).streaming is None


def test_the_section_fits_the_manifests_json_schema(issue):
    import jsonschema

    from parity.runtime.bundle_format import streaming
    from parity.runtime.bundle_format.manifest import SCHEMA, vocabulary

    _, bundle, _ = issue
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not list(validator.iter_errors(data))
    for literal, (definition, field) in {
        "Source": ("streaming", "source"),
        "Per": ("stream_output", "per"),
        "Reset": ("stream_state", "reset"),
    }.items():
        assert typing.get_args(getattr(streaming, literal)) == vocabulary(definition, field)
    index = SCHEMA["$defs"]["stream_state"]["properties"]["index"]
    assert index["maximum"] == streaming.MAX_STATE_INDEX
    data["streaming"]["states"][0]["reset"] = "random"
    assert list(validator.iter_errors(data))
    with pytest.raises(BundleError, match=r"streaming.states\[0\].reset"):
        parse_manifest(data)


def test_a_golden_stream_that_does_not_fit_the_manifest_is_refused(issue, tmp_path):
    import shutil

    from parity.exporter.bundle_writer import write_bundle
    from parity.runtime.npy import load_arrays

    _, bundle, _ = issue
    manifest = runtime.read_manifest(bundle)
    golden = load_arrays(bundle / manifest.golden["file"])
    golden["stream_chunks/states/state.rnn.h"] = golden["stream_chunks/states/state.rnn.h"][:, :3]
    graphs = {key: (bundle / spec.file).read_bytes() for key, spec in manifest.graphs.items()}
    write_bundle(tmp_path / "bad", manifest, graphs, golden)
    result = _cli("verify", tmp_path / "bad", "-q")
    assert result.exit_code == 2 and "stream_chunks/states/state.rnn.h" in result.output
    shutil.rmtree(tmp_path / "bad")


def test_fused_stream_ops_start_from_the_states(tagger):
    import onnx

    _, folder, manifest = tagger
    nodes = onnx.load(str(folder / "stream.onnx")).graph.node
    ops = {node.op_type: node for node in nodes if node.op_type in ("LSTM", "GRU", "Scan", "Loop")}
    assert sorted(ops) == ["GRU", "LSTM", "Scan"]
    assert ops["LSTM"].input[5] and ops["LSTM"].input[6] and ops["GRU"].input[5]
    assert manifest.streaming.source == "streaming" and manifest.streaming.keras_batch is None
    assert [s.input for s in manifest.streaming.states] == [
        "state.lstm.h", "state.lstm.c", "state.gru.h", "state.rnn.h"
    ]  # fmt: skip


def test_any_chunking_equals_one_call(tagger):
    _, folder, _ = tagger
    x = np.random.default_rng(0).uniform(-1, 1, (2, 9, 4)).astype(np.float32)
    stream = runtime.open_stream(folder, batch=2, device="cpu")
    whole, whole_states = run_schedule(stream, {"x": x}, (9,))
    for chunks in ((1,) * 9, (2, 1, 5, 1), (4, 5)):
        tags, states = run_schedule(stream, {"x": x}, chunks)
        np.testing.assert_allclose(tags["tags"], whole["tags"], atol=1e-6)
        for name, value in states.items():
            np.testing.assert_allclose(value, whole_states[name], atol=1e-6)


def test_stream_api(tagger):
    _, folder, _ = tagger
    bundle = runtime.load_bundle(folder, device="cpu")
    stream = runtime.open_stream(bundle, batch=2)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 1, 4)).astype(np.float32)
    first = stream.feed(x)["tags"]  # a chunk of one step
    assert first.shape == (2, 1, 3)
    assert not np.allclose(stream.feed({"x": x})["tags"], first)  # the states moved on
    stream.reset(rows=[0])
    again = stream.feed(x)["tags"]
    np.testing.assert_array_equal(again[0], first[0])  # row 0 starts anew
    assert not np.allclose(again[1], first[1])  # row 1 carries on
    assert stream.steps.tolist() == [1, 3]
    saved = stream.states
    ahead = stream.feed(x)["tags"]
    stream.set_states(saved)
    np.testing.assert_array_equal(stream.feed(x)["tags"], ahead)  # resumed
    stream.reset(rows=np.array([False, True]))
    assert stream.steps.tolist() == [3, 0]
    stream.reset()
    np.testing.assert_array_equal(stream.feed(x)["tags"], first)
    for bad, words in (
        (np.zeros((3, 1, 4), np.float32), "batch 3"),
        (np.zeros((2, 0, 4), np.float32), "is 0"),
        (np.full((2, 1, 4), np.nan, np.float32), "NaN"),
        ({"y": x}, "not a sequence input"),
    ):
        with pytest.raises(InputError, match=words):
            stream.feed(bad)
    with pytest.raises(ParameterError, match="rows"):
        stream.reset(rows=[2])
    with pytest.raises(ParameterError, match="batch"):
        runtime.open_stream(bundle, batch=0)
    with pytest.raises(InputError, match="not a state"):
        stream.set_states({"state.nope.h": np.zeros((2, 6))})
    with pytest.raises(InputError, match="axis 1"):
        stream.set_states({"state.lstm.h": np.zeros((2, 5))})


def test_a_bundle_that_is_not_a_stream_is_refused(tmp_path):
    from tests import bundles

    bundles.write_single(tmp_path / "single")
    with pytest.raises(BundleError, match="not a stream bundle"):
        runtime.open_stream(tmp_path / "single")


def test_masked_steps_keep_the_state(issue):
    _, bundle, _ = issue
    stream = runtime.open_stream(bundle, batch=3, device="cpu")
    x = np.random.default_rng(2).uniform(-1, 1, (3, 4, 5)).astype(np.float32)
    stream.feed(x)
    before = stream.states["state.rnn.h"]
    idle = x.copy()
    idle[1] = 0.0  # row 1 has nothing to say for a whole chunk
    head = stream.feed(idle)["head"]
    after = stream.states["state.rnn.h"]
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.allclose(after[0], before[0])
    # Keras' rule: a chunk all masked outputs zeros, whatever the state (then the head's bias)
    fresh = runtime.open_stream(bundle, batch=3, device="cpu").feed(np.zeros_like(x))["head"]
    np.testing.assert_allclose(head[1], fresh[1], atol=1e-7)


def test_a_stream_shared_by_threads_is_never_corrupted(tagger):
    _, folder, _ = tagger
    x = np.random.default_rng(3).uniform(-1, 1, (2, 1, 4)).astype(np.float32)
    shared = runtime.open_stream(folder, batch=2, device="cpu")
    threads = [threading.Thread(target=lambda: [shared.feed(x) for _ in range(20)])
               for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = runtime.open_stream(folder, batch=2, device="cpu")
    for _ in range(40):
        alone.feed(x)
    for name, value in alone.states.items():
        np.testing.assert_allclose(shared.states[name], value, atol=1e-6)
    assert shared.steps.tolist() == [40, 40]


def test_a_streamed_stateless_model_verifies_against_its_one_call(tagger):
    from parity.verify import VerifyOptions, check

    model, folder, _ = tagger
    report = check(folder, model, VerifyOptions(device="cpu", batches=(2,), times=(9,)))
    assert report.passed, report.table()
    names = [c.name for c in report.checks]
    assert "stream random chunks against one call of the model/tags" in names
    assert "onnxruntime: stream one step at a time against one call/tags" in names


def test_a_damaged_stream_bundle_fails(issue, tmp_path):
    import onnx

    model, bundle, _ = issue
    proto = onnx.load(str(bundle / "stream.onnx"))
    weight = faults.float_initializers(proto)[0]
    damaged = faults.damaged_copy(
        bundle, tmp_path / "damaged", faults.scale_initializer(weight, 1.01), graph="stream"
    )
    result = _cli("verify", model, damaged, "-q")
    assert result.exit_code == 1, result.output
    assert "FAIL stream whole/head" in result.output
    assert "FAIL golden stream_chunks/head" in result.output


def test_verify_refuses_inputs_for_a_stream(issue, tmp_path):
    model, bundle, _ = issue
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 4, 5), np.float32))
    result = _cli("verify", model, bundle, "--inputs", tmp_path / "x.npz", "-q")
    assert result.exit_code == 2 and "inputs: a stream bundle" in result.output


def _refused():
    """(what, model, streaming, words of the reason)."""
    import keras
    from keras import layers

    def chain(*steps, batch=2, time=None, streaming=False):
        x = keras.Input(batch_shape=(batch, time, 5), name="x")
        y = x
        for step in steps:
            y = step(y)
        return keras.Model(x, y), streaming

    def initial_state():
        x = keras.Input(batch_shape=(2, None, 5), name="x")
        y, h, c = layers.LSTM(4, stateful=True, return_sequences=True, return_state=True)(x)
        return keras.Model(x, layers.LSTM(4, stateful=True)(y, initial_state=[h, c])), False

    def attention():
        x = keras.Input(batch_shape=(2, None, 5), name="x")
        y = layers.LSTM(4, stateful=True, return_sequences=True)(x)
        return keras.Model(x, layers.Attention()([y, y])), False

    sequences = {"return_sequences": True, "stateful": True}
    return [
        ("Bidirectional", *chain(layers.Bidirectional(layers.LSTM(4, stateful=True))),
         "reads later steps"),
        ("go_backwards", *chain(layers.LSTM(4, stateful=True, go_backwards=True)),
         "go_backwards=True"),
        ("Flatten over time", *chain(layers.LSTM(4, **sequences), layers.Flatten(), time=6),
         "flattens the time axis"),
        ("causal Conv1D", *chain(layers.Conv1D(4, 3, padding="causal"),
                                 layers.LSTM(4, stateful=True)), "carried buffer"),
        ("pooling", *chain(layers.LSTM(4, **sequences), layers.GlobalAveragePooling1D()),
         "pools over every step"),
        ("attention", *attention(), "each step reads other steps"),
        ("mixed", *chain(layers.LSTM(4, **sequences), layers.GRU(3)), "restarts from zeros"),
        ("stateless", *chain(layers.LSTM(4), batch=None), "--streaming"),
        ("initial_state", *initial_state(), "initial_state"),
        ("LayerNormalization over time",
         *chain(layers.LSTM(4, **sequences), layers.LayerNormalization(axis=1), time=6),
         "the time axis"),
    ]  # fmt: skip


def test_models_that_cannot_stream_are_refused_with_the_reason(tmp_path):
    from parity.exporter.stream_plan import NotStreamable, plan_stream

    for _, model, streaming, words in _refused():
        with pytest.raises(NotStreamable, match=words):
            plan_stream(model, streaming=streaming)
    model, *_ = _refused()[0][1:]
    model.save(tmp_path / "bidirectional.keras")
    result = _cli("export", tmp_path / "bidirectional.keras", tmp_path / "b")
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error.startswith("error: model") and "reads later steps" in error
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["stateful_lstm", "stateful_gru"])
def test_keras2_stateful_files_stream_as_tensorflow_2_15_ran_them(name, tmp_path):
    """Written by TensorFlow 2.15 with ``stateful=True`` and batch 2, and run
    there by ``predict(x, batch_size=2)`` after ``reset_states()``: rows 2-3
    continue from the states rows 0-1 ended with."""
    entry = json.loads((FIXTURES / "fixtures.json").read_text())["models"][name]
    (file,) = entry["files"]
    result = _cli("export", FIXTURES / file, tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    recorded = np.load(FIXTURES / entry["io"])
    (input_name,) = entry["inputs"]
    x = recorded[input_name]
    stream = runtime.open_stream(tmp_path / "bundle", batch=2, device="cpu")
    (output,) = [o.name for o in stream.outputs]
    first = stream.feed(x[:2])[output]
    second = stream.feed(x[2:])[output]
    np.testing.assert_allclose(np.concatenate([first, second]), recorded["output_0"], atol=1e-6)
    if name == "stateful_gru":  # built for 4 steps: Keras takes chunks of 4 only
        verified = _cli("verify", FIXTURES / file, tmp_path / "bundle", "-q")
        assert verified.exit_code == 0, verified.output
        assert "takes chunks of 4 steps only" in verified.output


def test_verification_leaves_a_stateful_models_states_as_found(tmp_path):
    from parity.exporter import export_model
    from parity.verify import VerifyOptions, check

    model = issue_model()
    export_model(model, tmp_path / "bundle")
    model(np.ones((3, 2, 5), np.float32))  # the model has been running
    found = model.get_layer("rnn").states[0].numpy().copy()
    assert np.abs(found).max() > 0
    report = check(tmp_path / "bundle", model, VerifyOptions(device="cpu", times=(6,)))
    assert report.passed, report.table()
    np.testing.assert_array_equal(model.get_layer("rnn").states[0].numpy(), found)
