"""The seq2seq splitter and TensorFlow's reference generation (TensorFlow only).

The strongest check needs no ONNX: a generation fed back, as teacher forcing,
into the original training model must give the generation again. It holds the
encoder, the step model, the state wiring and the feedback rule together to
the model the user trained.
"""

import keras
import numpy as np
import pytest

from parity.exporter.keras_generation import _GENERATORS, reference_generate
from parity.exporter.keras_graph import layer_name
from parity.exporter.split import is_seq2seq, split_seq2seq
from parity.runtime.errors import ParityError
from tests import seq2seq_models

HORIZON = 6
BATCH = 3


@pytest.fixture(scope="module")
def built():
    """Each test model with its split, built once with fixed initial weights."""
    keras.utils.set_random_seed(7)
    result = {}
    for name, build in seq2seq_models.FITTING.items():
        model = build()
        result[name] = (model, split_seq2seq(model))
    return result


@pytest.fixture(scope="module")
def sine(trained_zoo):
    """The zoo's sine forecaster, trained and read back from its .keras file."""
    model = keras.saving.load_model(trained_zoo["sine_seq2seq"].path)
    return model, split_seq2seq(model)


def encoder_batch(model, batch, steps=7, seed=0):
    shape = (batch, steps, *model.inputs[0].shape[2:])
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def first_input(model, split, encoder_x):
    """The first step input as the split's start rule says."""
    decoder = model.inputs[1]
    batch = len(encoder_x)
    if split.start == "last_encoder_step":
        return encoder_x[:, -1:]
    if split.feedback == "argmax_token":
        return np.full((batch, 1), split.start_token, decoder.dtype)
    if split.feedback == "argmax_onehot":
        return np.eye(decoder.shape[-1], dtype="float32")[[split.start_token] * batch][:, None]
    return np.zeros((batch, 1, decoder.shape[-1]), "float32")


def teacher_inputs(split, start, generation):
    """What the training model reads to predict ``generation`` step by step."""
    previous = generation[:, :-1]
    if split.feedback == "argmax_token":
        previous = previous.argmax(-1).astype(start.dtype)
    elif split.feedback == "argmax_onehot":
        previous = np.eye(generation.shape[-1], dtype="float32")[previous.argmax(-1)]
    return np.concatenate([start, previous], axis=1)


def check_against_training_model(model, split, batch):
    encoder_x = encoder_batch(model, batch)
    start = first_input(model, split, encoder_x)
    generation = reference_generate(split, {split.encoder_input: encoder_x}, start, HORIZON)
    assert generation.shape == (batch, HORIZON, *model.outputs[0].shape[2:])
    teacher = np.asarray(model([encoder_x, teacher_inputs(split, start, generation)]))
    np.testing.assert_allclose(generation, teacher, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(seq2seq_models.FITTING))
def test_generation_is_what_the_training_model_predicts(built, name):
    model, split = built[name]
    check_against_training_model(model, split, BATCH)


def test_zoo_generation_is_what_the_training_model_predicts(sine):
    model, split = sine
    check_against_training_model(model, split, 1)
    check_against_training_model(model, split, BATCH)


def test_split_of_the_zoo_model(sine):
    _, split = sine
    assert (split.feedback, split.start, split.start_token) == (
        "identity",
        "last_encoder_step",
        None,
    )
    assert (split.encoder_input, split.step_input, split.step_output) == (
        "encoder_input",
        "decoder_input",
        "forecast",
    )
    assert split.decoder_layers == ("decoder_lstm_1", "decoder_lstm_2")
    described = [(s.name, s.layer, s.kind, s.size, s.init, s.encoder_output) for s in split.states]
    assert described == [
        ("decoder_lstm_1_h", "decoder_lstm_1", "h", 16, "encoder", "decoder_lstm_1_h_init"),
        ("decoder_lstm_1_c", "decoder_lstm_1", "c", 16, "encoder", "decoder_lstm_1_c_init"),
        ("decoder_lstm_2_h", "decoder_lstm_2", "h", 16, "zeros", None),
        ("decoder_lstm_2_c", "decoder_lstm_2", "c", 16, "zeros", None),
    ]
    assert [t.name for t in split.step.inputs] == ["decoder_input"] + [
        s.step_input for s in split.states
    ]
    assert [layer_name(t) for t in split.step.outputs] == ["forecast"] + [
        s.step_output for s in split.states
    ]
    assert [layer_name(t) for t in split.encoder.outputs] == [
        "decoder_lstm_1_h_init",
        "decoder_lstm_1_c_init",
    ]
    assert tuple(split.step.inputs[0].shape) == (None, 1, 5)


def test_rules_of_the_test_models(built):
    rules = {name: (split.feedback, split.start) for name, (_, split) in built.items()}
    assert rules == {
        "gru_stack": ("identity", "zeros"),
        "token_lstm": ("argmax_token", "token"),
        "zeros_below": ("identity", "last_encoder_step"),
        "onehot_simple_rnn": ("argmax_onehot", "token"),
        "attention_decoder": ("identity", "last_encoder_step"),
    }
    attention = built["attention_decoder"][1]
    assert (attention.form, [m.name for m in attention.memories]) == ("attention", ["enc"])
    inits = [(s.name, s.init) for s in built["zeros_below"][1].states]
    assert inits == [
        ("lower_1_h", "zeros"),
        ("lower_1_c", "zeros"),
        ("lower_2_h", "zeros"),
        ("lower_2_c", "zeros"),
        ("top_h", "encoder"),
        ("top_c", "encoder"),
    ]
    assert [(s.name, s.size) for s in built["gru_stack"][1].states] == [
        ("dec_gru_1_h", 12),
        ("dec_gru_2_h", 10),
    ]
    assert built["token_lstm"][1].step.inputs[0].dtype == "int32"


def test_generation_is_traced_once_whatever_the_steps(built):
    model, _ = built["zeros_below"]
    split = split_seq2seq(model)
    encoder_x = encoder_batch(model, 2)
    start = first_input(model, split, encoder_x)
    short = reference_generate(split, encoder_x, start[:, 0], 3)
    long = reference_generate(split, encoder_x, start, 40)
    assert long.shape == (2, 40, 4)
    np.testing.assert_array_equal(long[:, :3], short)
    assert _GENERATORS[split.step].experimental_get_tracing_count() == 1


def test_stop_token_ends_rows_and_generation(built):
    model, split = built["token_lstm"]
    encoder_x = encoder_batch(model, 4, seed=3)
    start = first_input(model, split, encoder_x)
    free = reference_generate(split, encoder_x, start, 12)
    tokens = free.argmax(-1)
    stop = int(tokens[0, 2])
    stopped = reference_generate(split, encoder_x, start, 12, stop_token=stop)

    firsts = [np.flatnonzero(row == stop) for row in tokens]
    length = 12 if any(f.size == 0 for f in firsts) else max(int(f[0]) for f in firsts) + 1
    assert stopped.shape == (4, length, 13)
    for row, first in enumerate(firsts):
        end = int(first[0]) if first.size else length
        np.testing.assert_allclose(stopped[row, : end + 1], free[row, : end + 1], atol=1e-6)
        np.testing.assert_array_equal(
            stopped[row, end:], np.repeat(free[row, end:][:1], length - end, 0)
        )


@pytest.mark.parametrize("name", sorted(seq2seq_models.MISFITS))
def test_misfits_are_refused_with_the_reason(name):
    build, phrase = seq2seq_models.MISFITS[name]
    with pytest.raises(ParityError) as caught:
        split_seq2seq(build())
    message = str(caught.value)
    assert phrase in message and "expected" in message and "\n" not in message


def test_is_seq2seq():
    looks = {name: is_seq2seq(build()) for name, (build, _) in seq2seq_models.MISFITS.items()}
    assert looks == {
        "bidirectional_decoder": True,
        "repeated_context": False,
        "state_from_decoder": True,
        "last_step_decoder": True,
        "classifier": False,
    }


def test_fitting_models_are_seq2seq(built):
    assert all(is_seq2seq(model) for model, _ in built.values())


def test_bad_start_and_steps_are_refused(built):
    model, split = built["gru_stack"]
    encoder_x = encoder_batch(model, 2)
    with pytest.raises(ParityError, match="start: expected shape"):
        reference_generate(split, encoder_x, np.zeros((2, 3, 3), "float32"), 4)
    with pytest.raises(ParityError, match="steps must be at least 1"):
        reference_generate(split, encoder_x, np.zeros((2, 1, 3), "float32"), 0)
    with pytest.raises(ParityError, match="no array named 'history'"):
        reference_generate(split, {"x": encoder_x}, np.zeros((2, 1, 3), "float32"), 4)
    with pytest.raises(ParityError, match="stop_token"):
        reference_generate(split, encoder_x, np.zeros((2, 1, 3), "float32"), 4, stop_token=1)
