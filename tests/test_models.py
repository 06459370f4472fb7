"""The zoo: every entry builds, trains on its tiny preset, learns, saves and
reloads; the data generators are deterministic and say what they claim."""

import subprocess
import sys

import numpy as np
import pytest

from parity import models
from parity.files import save_model
from parity.models.masked_lstm import label_of, sign_patterns
from parity.runtime.errors import ParityError

NAMES = models.names()
OUTPUT_LAYERS = {
    "conv_rows_lstm": "probs",
    "td_cnn_lstm": "probs",
    "masked_lstm": "probs",
    "seq_tagger": "tags",
    "sine_seq2seq": "forecast",
}


def _inputs(model, data):
    if len(model.inputs) == 1:
        return data.inputs[model.inputs[0].name]
    return dict(data.inputs)


def test_the_zoo_has_the_fixed_names():
    assert models.names() == list(OUTPUT_LAYERS)


def test_an_unknown_name_or_preset_is_a_one_line_error():
    with pytest.raises(ParityError, match=r"unknown zoo model 'lstm' \(choose from: conv_rows"):
        models.get("lstm")
    with pytest.raises(ParityError, match=r"unknown preset 'huge' \(choose from: tiny, seed\)"):
        models.get("seq_tagger").make_data("huge", 1, 0)
    with pytest.raises(ParityError, match="epochs must be at least 1"):
        models.train("seq_tagger", epochs=0)


@pytest.mark.parametrize("name", NAMES)
def test_data_is_deterministic_per_seed(name):
    entry = models.get(name)
    first, again, other = (entry.make_data("tiny", 6, seed) for seed in (5, 5, 6))
    for key in first.inputs:
        assert first.inputs[key].dtype == np.float32
        np.testing.assert_array_equal(first.inputs[key], again.inputs[key])
        assert not np.array_equal(first.inputs[key], other.inputs[key])
    np.testing.assert_array_equal(first.targets, again.targets)


@pytest.mark.parametrize("name", NAMES)
def test_trained_model_has_named_inputs_and_output(name, trained_zoo):
    trained = trained_zoo[name]
    data = trained.entry.make_data("tiny", 2, 0)
    assert sorted(t.name for t in trained.model.inputs) == sorted(data.inputs)
    assert trained.model.layers[-1].name == OUTPUT_LAYERS[name]


@pytest.mark.parametrize("name", NAMES)
def test_learns_clearly_better_than_chance_on_held_out_data(name, trained_zoo):
    result = trained_zoo[name].result
    score = result.metrics[result.metric]
    if result.metric == "accuracy":
        assert score > result.chance + 0.4, result.metrics
    else:
        assert score < result.chance / 10, result.metrics
    assert result.history["loss"][-1] < result.history["loss"][0]


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_reloads_with_identical_predictions(name, trained_zoo):
    import keras

    trained = trained_zoo[name]
    data = trained.entry.make_data("tiny", 16, 123)
    reloaded = keras.models.load_model(trained.path)
    np.testing.assert_array_equal(
        reloaded.predict(_inputs(reloaded, data), verbose=0),
        trained.model.predict(_inputs(trained.model, data), verbose=0),
    )


def test_saving_leaves_only_the_model_file(trained_zoo):
    path = trained_zoo["seq_tagger"].path
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ParityError, match="must end with .keras"):
        save_model(trained_zoo["seq_tagger"].model, path.with_suffix(".h5"))
    with pytest.raises(ParityError, match="does not exist"):
        save_model(trained_zoo["seq_tagger"].model, path.parent / "missing" / "m.keras")


def test_a_fresh_process_loads_a_saved_model_with_plain_keras(trained_zoo, tmp_path):
    trained = trained_zoo["sine_seq2seq"]
    data = trained.entry.make_data("tiny", 4, 7)
    np.savez(tmp_path / "inputs.npz", **data.inputs)
    script = (
        "import sys, keras, numpy as np\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "inputs = dict(np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], model.predict(inputs, verbose=0))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, trained.path, tmp_path / "inputs.npz", tmp_path / "y.npy"],
        check=True,
        capture_output=True,
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "y.npy"), trained.model.predict(dict(data.inputs), verbose=0)
    )


def test_training_is_reproducible_with_the_seed():
    first, again, other = (models.train("seq_tagger", epochs=1, seed=seed) for seed in (3, 3, 4))
    weights = [r.model.get_weights() for r in (first, again, other)]
    for a, b in zip(weights[0], weights[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.history == again.history
    assert any(not np.array_equal(a, c) for a, c in zip(weights[0], weights[2], strict=True))


def test_masked_rows_are_post_padded_and_labelled_by_their_valid_part():
    entry = models.get("masked_lstm")
    preset = entry.preset("tiny")
    data = entry.make_data("tiny", 64, 9)
    sequence, lengths = data.inputs["sequence"], data.lengths
    steps = preset.dims["steps"]
    assert lengths.min() == 1 and lengths.max() == steps
    assert len(np.unique(lengths)) > steps // 2
    patterns = sign_patterns(preset)
    for row, length in enumerate(lengths):
        valid, padding = sequence[row, :length], sequence[row, length:]
        assert np.all(padding == 0.0)
        assert np.all(np.abs(valid) >= 0.25)  # no valid step looks like padding
        assert data.targets[row] == label_of(valid, patterns)
    assert len(np.unique(data.targets)) > preset.dims["classes"] // 2


def test_seq_tagger_tags_sequences_of_any_length(trained_zoo):
    """Called eagerly: inside a tf.function with a dynamic time axis (as in
    ``predict`` once it retraces), Keras' TimeDistributed maps over the batch
    axis instead of the time axis and returns (batch, batch, tags)."""
    from parity.models.seq_tagger import tags_of

    model = trained_zoo["seq_tagger"].model
    rng = np.random.default_rng(11)
    for steps in (1, 7, 40):
        tokens = rng.normal(size=(8, steps, 4)).astype(np.float32)
        tags = np.asarray(model(tokens, training=False))
        assert tags.shape == (8, steps, 4)
    assert np.mean(tags.argmax(-1) == tags_of(tokens)) > 0.7


def test_sine_decoder_reads_the_last_observed_point_then_the_shifted_targets():
    data = models.get("sine_seq2seq").make_data("tiny", 3, 2)
    encoder_input, decoder_input = data.inputs["encoder_input"], data.inputs["decoder_input"]
    np.testing.assert_array_equal(decoder_input[:, 0], encoder_input[:, -1])
    np.testing.assert_array_equal(decoder_input[:, 1:], data.targets[:, :-1])
    assert data.targets.shape == (3, 10, 5)
    assert 16 <= encoder_input.shape[1] <= 31


def test_sine_free_running_generation_beats_chance(trained_zoo):
    """Feed the decoder its own output, one step at a time, through the training
    model: the trained weights must forecast without teacher forcing."""
    trained = trained_zoo["sine_seq2seq"]
    data = trained.entry.make_data("tiny", 64, 77)
    encoder_input = data.inputs["encoder_input"]
    decoder_input = encoder_input[:, -1:]
    for _ in range(data.targets.shape[1]):
        forecast = trained.model.predict(
            {"encoder_input": encoder_input, "decoder_input": decoder_input}, verbose=0
        )
        decoder_input = np.concatenate([decoder_input, forecast[:, -1:]], axis=1)
    error = np.mean((decoder_input[:, 1:] - data.targets) ** 2)
    assert error < trained.result.chance / 4


@pytest.mark.parametrize(
    ("name", "input_shapes"),
    [
        ("conv_rows_lstm", [(None, 56, 14, 1)]),
        ("td_cnn_lstm", [(None, 5, 224, 224, 3)]),
        ("masked_lstm", [(None, 100, 20)]),
        ("seq_tagger", [(None, None, 5)]),
        ("sine_seq2seq", [(None, None, 5), (None, None, 5)]),
    ],
)
def test_seed_preset_has_the_seed_sizes_and_fits_its_data(name, input_shapes):
    entry = models.get(name)
    model = entry.build("seed")
    assert [tuple(t.shape) for t in model.inputs] == input_shapes
    data = entry.make_data("seed", 2, 0)
    output = model.predict(_inputs(model, data), verbose=0)
    assert output.shape[: data.targets.ndim] == data.targets.shape
    units = {layer.units for layer in model.layers if type(layer).__name__ == "LSTM"}
    if name == "masked_lstm":
        assert units == {128} and output.shape == (2, 13)
    if name == "sine_seq2seq":
        assert units == {40} and data.targets.shape == (2, 150, 5)
        assert sum(type(layer).__name__ == "LSTM" for layer in model.layers) == 8
        assert 150 <= data.inputs["encoder_input"].shape[1] <= 299
