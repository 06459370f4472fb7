"""Seq2seq bundles: encoder and step graphs, and ONNX Runtime's generation
held to TensorFlow's reference generation of the same trained model.

Each model is exported once per module. ONNX Runtime runs the graphs directly
(a graph against its Keras counterpart) and through ``runtime.generate`` (the
whole generation against :func:`parity.exporter.keras_generation.reference_generate`).
"""

import json

import keras
import numpy as np
import onnxruntime as ort
import pytest

from parity import models, runtime
from parity.exporter.keras_generation import reference_generate
from parity.exporter.seq2seq_bundle import DEFAULT_STEPS, export_seq2seq
from parity.runtime.bundle_format.manifest import read_manifest
from parity.runtime.errors import ParityError
from parity.runtime.generate import start_input
from tests import seq2seq_models

ATOL = 1e-5
BATCHES = (1, 7)
SOURCE = {"name": "test", "file": "test.keras", "sha256": "0" * 64}


class Exported:
    """A model, its split (rebuilt from the model) and its bundle."""

    def __init__(self, model, path, steps=None):
        from parity.exporter.split import split_seq2seq

        self.model = model
        self.path = path
        self.manifest = export_seq2seq(model, path, source_info=SOURCE, steps=steps)
        self.split = split_seq2seq(model)
        self.bundle = runtime.load_bundle(path, device="cpu")

    def session(self, key):
        graph = self.manifest.graph(key)
        return ort.InferenceSession(str(self.path / graph.file), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_zoo):
    folder = tmp_path_factory.mktemp("seq2seq_bundles")
    keras.utils.set_random_seed(11)
    result = {
        name: Exported(build(), folder / name) for name, build in seq2seq_models.FITTING.items()
    }
    sine = keras.saving.load_model(trained_zoo["sine_seq2seq"].path)
    result["sine_seq2seq"] = Exported(sine, folder / "sine_seq2seq", steps=10)
    return result


NAMES = sorted([*seq2seq_models.FITTING, "sine_seq2seq"])


def random_inputs(specs, batch, seed):
    """Arrays for graph inputs: ``time`` dims get 9 steps, tokens stay in the
    vocabulary, states and features lie in [-1, 1]."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        shape = [batch if d == "batch" else 9 if isinstance(d, str) else d for d in spec.shape]
        if spec.dtype.startswith("int"):
            vocab = (spec.domain or {}).get("vocab", 10)
            arrays[spec.name] = rng.integers(0, vocab, shape).astype(spec.dtype)
        else:
            arrays[spec.name] = rng.uniform(-1, 1, shape).astype(spec.dtype)
    return arrays


def keras_outputs(keras_model, inputs, specs):
    names = [t.name for t in keras_model.inputs]
    arrays = [inputs[name] for name in names]
    values = keras_model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    values = values if isinstance(values, list) else [values]
    return {spec.name: np.asarray(v) for spec, v in zip(specs, values, strict=True)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("key", ["encoder", "step"])
def test_graph_equals_its_keras_model(exported, name, key):
    item = exported[name]
    graph = item.manifest.graph(key)
    session = item.session(key)
    keras_model = item.split.encoder if key == "encoder" else item.split.step
    assert [i.name for i in session.get_inputs()] == [s.name for s in graph.inputs]
    for batch in BATCHES:
        inputs = random_inputs(graph.inputs, batch, seed=batch)
        expected = keras_outputs(keras_model, inputs, graph.outputs)
        actual = dict(zip([s.name for s in graph.outputs], session.run(None, inputs), strict=True))
        for spec in graph.outputs:
            np.testing.assert_allclose(actual[spec.name], expected[spec.name], atol=ATOL)


def check_generation(item, steps, batch, seed=0):
    spec = item.manifest.seq2seq
    encoder_graph = item.manifest.graph("encoder")
    encoder_inputs = random_inputs(encoder_graph.inputs, batch, seed=seed)
    start = start_input(item.manifest, encoder_inputs)
    expected = reference_generate(item.split, encoder_inputs, start, steps)
    for use_loop_graph in (True, False):  # one ONNX call, and the Python step loop
        actual = runtime.generate(
            item.bundle, encoder_inputs, start=start, steps=steps, use_loop_graph=use_loop_graph
        )
        assert actual.shape == expected.shape == (batch, steps, *expected.shape[2:])
        np.testing.assert_allclose(actual, expected, atol=ATOL, err_msg=f"{spec.step_output}")
    return expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", BATCHES)
def test_generation_equals_tensorflow_reference(exported, name, batch):
    item = exported[name]
    expected = check_generation(item, item.manifest.seq2seq.steps, batch)
    if item.split.feedback != "identity":
        # A token decoder must not be stuck on one token, or the feedback
        # would go untested.
        assert len(np.unique(expected.argmax(-1))) > 1


def test_seed_preset_over_the_whole_horizon(tmp_path):
    """The seed's size (4 + 4 LSTMs of 40 units) over its 150 steps."""
    entry = models.get("sine_seq2seq")
    keras.utils.set_random_seed(0)
    horizon = entry.preset("seed").dims["horizon"]
    item = Exported(entry.build("seed"), tmp_path / "seed", steps=horizon)
    assert item.manifest.seq2seq.steps == 150
    for batch in BATCHES:
        check_generation(item, horizon, batch, seed=batch)


def test_manifest_describes_the_wiring(exported):
    item = exported["sine_seq2seq"]
    manifest = read_manifest(item.path)
    spec = manifest.seq2seq
    assert manifest.kind == "seq2seq"
    assert {key: g.file for key, g in manifest.graphs.items()} == {
        "encoder": "encoder.onnx",
        "step": "step.onnx",
        "loop": "loop.onnx",
    }
    assert spec.loop_graph == "loop"
    assert (spec.encoder_input, spec.step_input, spec.step_output) == (
        "encoder_input",
        "decoder_input",
        "forecast",
    )
    assert (spec.feedback, spec.start, spec.steps) == ("identity", "last_encoder_step", 10)
    layout = [(s.layer, s.kind, s.size, s.init, s.encoder_output) for s in spec.states]
    assert layout == [
        ("decoder_lstm_1", "h", 16, "encoder", "decoder_lstm_1_h_init"),
        ("decoder_lstm_1", "c", 16, "encoder", "decoder_lstm_1_c_init"),
        ("decoder_lstm_2", "h", 16, "zeros", None),
        ("decoder_lstm_2", "c", 16, "zeros", None),
    ]
    step = manifest.graph("step")
    assert [t.name for t in step.inputs] == ["decoder_input"] + [s.step_input for s in spec.states]
    assert [t.name for t in step.outputs] == ["forecast"] + [s.step_output for s in spec.states]
    assert step.input("decoder_input").shape == ("batch", 1, 5)
    encoder = manifest.graph("encoder")
    assert [t.name for t in encoder.outputs] == ["decoder_lstm_1_h_init", "decoder_lstm_1_c_init"]
    token = exported["token_lstm"].manifest.seq2seq
    assert (token.feedback, token.start, token.start_token) == ("argmax_token", "token", 0)


def test_golden_generation_is_reproduced_by_onnx(exported):
    for name in ("sine_seq2seq", "token_lstm"):
        item = exported[name]
        spec = item.manifest.seq2seq
        with np.load(item.path / "golden.npz", allow_pickle=False) as golden:
            arrays = dict(golden)
        expected = arrays[f"generation/outputs/{spec.step_output}"]
        assert expected.shape[:2] == (3, spec.steps)
        encoder_inputs = {spec.encoder_input: arrays[f"generation/inputs/{spec.encoder_input}"]}
        actual = runtime.generate(
            item.bundle, encoder_inputs, start=arrays["generation/inputs/start"], steps=spec.steps
        )
        np.testing.assert_allclose(actual, expected, atol=ATOL)
        for key in ("encoder", "step"):
            graph = item.manifest.graph(key)
            feeds = {s.name: arrays[f"{key}/inputs/{s.name}"] for s in graph.inputs}
            outputs = item.bundle.run(feeds, graph=key)
            for s in graph.outputs:
                np.testing.assert_allclose(
                    outputs[s.name], arrays[f"{key}/outputs/{s.name}"], 0, ATOL
                )


def test_horizon_defaults_with_a_note(exported):
    manifest = exported["gru_stack"].manifest
    assert manifest.seq2seq.steps == DEFAULT_STEPS
    assert any("horizon" in note for note in manifest.notes)


def test_misfit_is_refused_and_nothing_written(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(ParityError, match="Bidirectional"):
        export_seq2seq(seq2seq_models.bidirectional_decoder(), out, source_info=SOURCE)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_manifest_is_json_with_the_seq2seq_section(exported):
    data = json.loads((exported["zeros_below"].path / "manifest.json").read_text())
    assert data["kind"] == "seq2seq"
    assert [s["init"] for s in data["seq2seq"]["states"]] == ["zeros"] * 4 + ["encoder"] * 2
