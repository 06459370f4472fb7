"""Seq2seq models in the forms users write them. The first seed's forecaster:
an encoder, then the decoder unrolled by hand, the same layers called once
per output step with each output fed back, the steps joined over time. It is
re-rolled into encoder, step and loop graphs without tracing the unrolled
graph, and ``runtime.generate`` over the model's own number of steps must
equal the model's own eager output."""

import keras
import numpy as np
import pytest

from parity import runtime
from parity.exporter import export_keras
from parity.exporter.split import split_seq2seq
from parity.runtime.errors import ParityError

FEATURES, UNITS, HISTORY, STEPS = 3, 6, 8, 5


def unrolled_forecaster(
    cell: str = "LSTM", layers: int = 2, from_encoder: str = "first", join: str = "concatenate"
) -> keras.Model:
    """The first seed's model at a small size. ``from_encoder``: "first" (only
    the first decoder layer starts from the encoder's state, as in the seed) or
    "all"; ``join``: "concatenate" or "lambda"."""
    keras.utils.set_random_seed(0)
    rnn = getattr(keras.layers, cell)
    encoder_inputs = keras.Input((None, FEATURES), name="history")
    x = rnn(UNITS, return_sequences=True)(encoder_inputs)
    _, *encoder_states = rnn(UNITS, return_state=True)(x)
    decoder_inputs = keras.Input((1, FEATURES), name="first_step")
    decoders = [rnn(UNITS, return_sequences=True, return_state=True) for _ in range(layers)]
    dense = keras.layers.Dense(FEATURES, name="forecast")
    states = [encoder_states if i == 0 or from_encoder == "all" else None for i in range(layers)]
    inputs, outputs = decoder_inputs, []
    for _ in range(STEPS):
        y = inputs
        for i, decoder in enumerate(decoders):
            y, *states[i] = decoder(y, initial_state=states[i]) if states[i] else decoder(y)
        inputs = dense(y)
        outputs.append(inputs)
    if join == "concatenate":
        joined = keras.layers.Concatenate(axis=1)(outputs)
    else:
        joined = keras.layers.Lambda(
            lambda parts: keras.ops.concatenate(parts, axis=1),
            output_shape=(STEPS, FEATURES),
        )(outputs)
    return keras.Model([encoder_inputs, decoder_inputs], joined)


CASES = [
    ("LSTM", 2, "first"),
    ("GRU", 1, "first"),
    ("LSTM", 3, "all"),
    ("GRU", 2, "first"),
]


@pytest.mark.parametrize(("cell", "layers", "from_encoder"), CASES)
def test_unrolled_decoder_is_rerolled_and_generates_what_the_model_computes(
    tmp_path, cell, layers, from_encoder
):
    model = unrolled_forecaster(cell, layers, from_encoder)
    model.save(tmp_path / "m.keras")
    manifest = export_keras(tmp_path / "m.keras", tmp_path / "bundle")
    spec = manifest.seq2seq
    assert (spec.form, spec.steps, spec.feedback) == ("unrolled", STEPS, "identity")
    assert [state.init for state in spec.states].count("encoder") == (
        len(spec.states) if from_encoder == "all" else len(spec.states) // layers
    )
    rng = np.random.default_rng(1)
    history = rng.normal(size=(4, HISTORY, FEATURES)).astype("float32")
    first = rng.normal(size=(4, 1, FEATURES)).astype("float32")
    expected = np.asarray(model([history, first], training=False))
    bundle = runtime.load_bundle(tmp_path / "bundle")
    for use_loop_graph in (True, False):
        got = runtime.generate(
            bundle, {"history": history}, start=first, use_loop_graph=use_loop_graph
        )
        np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)


def test_lambda_join_loads_with_unsafe_and_exports(tmp_path):
    model = unrolled_forecaster(join="lambda")
    model.save(tmp_path / "m.keras")
    with pytest.raises(ParityError, match="unsafe"):
        export_keras(tmp_path / "m.keras", tmp_path / "refused")
    manifest = export_keras(tmp_path / "m.keras", tmp_path / "bundle", unsafe=True)
    assert (manifest.seq2seq.form, manifest.seq2seq.steps) == ("unrolled", STEPS)


def test_a_step_that_does_not_feed_back_is_refused_with_what_differed():
    keras.utils.set_random_seed(0)
    history = keras.Input((None, FEATURES), name="history")
    _, h, c = keras.layers.LSTM(UNITS, return_state=True)(history)
    first = keras.Input((1, FEATURES), name="first_step")
    decoder = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    dense = keras.layers.Dense(FEATURES)
    y, h1, c1 = decoder(first, initial_state=[h, c])
    out1 = dense(y)
    y, _, _ = decoder(first, initial_state=[h1, c1])  # reads the first step again
    joined = keras.layers.Concatenate(axis=1)([out1, dense(y)])
    with pytest.raises(ParityError, match="does not read step 0's output"):
        split_seq2seq(keras.Model([history, first], joined))


# --- attention decoders --------------------------------------------------------

VOCAB, SOURCE_LENGTH, TARGET_LENGTH = 11, 7, 4


def attention_translator(cell: str, attention: str, tokens: bool) -> keras.Model:
    """Luong-style attention: an encoder returning its sequence and states, a
    decoder starting from those states, attention from each decoder step to
    the encoder's sequence, the two concatenated, a softmax over the vocabulary.
    ``tokens``: the decoder reads token ids through an Embedding, else one-hot."""
    keras.utils.set_random_seed(0)
    rnn = getattr(keras.layers, cell)
    source = keras.Input((None,), dtype="int32", name="source")
    embedded = keras.layers.Embedding(VOCAB, 5)(source)
    encoded, *states = rnn(UNITS, return_sequences=True, return_state=True)(embedded)
    if tokens:
        target = keras.Input((None,), dtype="int32", name="target")
        decoder_x = keras.layers.Embedding(VOCAB, 5)(target)
    else:
        target = keras.Input((None, VOCAB), name="target")
        decoder_x = target
    decoded = rnn(UNITS, return_sequences=True)(decoder_x, initial_state=states)
    if attention == "MultiHeadAttention":
        context = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)(decoded, encoded)
    else:
        context = getattr(keras.layers, attention)()([decoded, encoded])
    joined = keras.layers.Concatenate()([decoded, context])
    probs = keras.layers.Dense(VOCAB, activation="softmax", name="probs")(joined)
    return keras.Model([source, target], probs)


ATTENTION_CASES = [
    ("LSTM", "Attention", True),
    ("GRU", "AdditiveAttention", False),
    ("LSTM", "MultiHeadAttention", False),
    ("GRU", "Attention", True),
]


@pytest.mark.parametrize(("cell", "attention", "tokens"), ATTENTION_CASES)
def test_attention_decoder_steps_compute_what_the_model_computes(tmp_path, cell, attention, tokens):
    """The step graph, fed the teacher's tokens one at a time with the encoder's
    sequence as a memory, gives the model's own output at every step; the
    generation agrees with TensorFlow's; source and target lengths differ."""
    from parity import verify

    model = attention_translator(cell, attention, tokens)
    model.save(tmp_path / "m.keras")
    manifest = export_keras(tmp_path / "m.keras", tmp_path / "bundle", steps=6)
    spec = manifest.seq2seq
    assert spec.form == "attention" and len(spec.memories) == 1
    assert spec.feedback == ("argmax_token" if tokens else "argmax_onehot")

    rng = np.random.default_rng(2)
    source = rng.integers(1, VOCAB, (3, SOURCE_LENGTH)).astype("int32")
    ids = rng.integers(1, VOCAB, (3, TARGET_LENGTH))
    target = ids.astype("int32") if tokens else np.eye(VOCAB, dtype="float32")[ids]
    expected = np.asarray(model([source, target], training=False))

    bundle = runtime.load_bundle(tmp_path / "bundle")
    feeds = {spec.encoder_input: source.astype(_dtype(manifest, "encoder", spec.encoder_input))}
    encoded = bundle.run(feeds, graph="encoder")
    step_dtype = _dtype(manifest, "step", spec.step_input)
    state = {s.step_input: encoded[s.encoder_output] for s in spec.states}
    memory = {m.step_input: encoded[m.encoder_output] for m in spec.memories}
    for t in range(TARGET_LENGTH):
        out = bundle.run(
            {spec.step_input: target[:, t : t + 1].astype(step_dtype), **state, **memory},
            graph="step",
        )
        np.testing.assert_allclose(out[spec.step_output][:, 0], expected[:, t], atol=1e-6)
        state = {s.step_input: out[s.step_output] for s in spec.states}

    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.keras", verify.VerifyOptions(batches=(2,))
    )
    assert report.passed, report.table()


def _dtype(manifest, graph, name):
    return manifest.graph(graph).input(name).dtype


def test_self_attention_in_the_decoder_is_refused():
    keras.utils.set_random_seed(0)
    source = keras.Input((None, 3), name="source")
    _, h, c = keras.layers.LSTM(UNITS, return_state=True)(source)
    target = keras.Input((None, 3), name="target")
    decoded = keras.layers.LSTM(UNITS, return_sequences=True)(target, initial_state=[h, c])
    context = keras.layers.Attention()([decoded, decoded])
    y = keras.layers.Dense(3)(keras.layers.Concatenate()([decoded, context]))
    with pytest.raises(ParityError, match="self-attention"):
        split_seq2seq(keras.Model([source, target], y))


def test_verify_holds_the_rerolled_graphs_to_the_unrolled_model_itself(tmp_path):
    from parity import verify

    unrolled_forecaster().save(tmp_path / "m.keras")
    export_keras(tmp_path / "m.keras", tmp_path / "bundle")
    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.keras", verify.VerifyOptions(batches=(1, 3))
    )
    own = [c for c in report.checks if "your unrolled model" in c.name]
    assert own and report.passed, report.table()
