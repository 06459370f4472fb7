"""A corpus of recurrent models from tensorflow-onnx's keras2onnx tests, rebuilt in Keras 3.

Every recurrent model written in

- ``tests/keras2onnx_unit_tests/test_layers.py`` (every LSTM, GRU, SimpleRNN,
  ``RNN(cell)``, Bidirectional, Masking, stateful and state-passing test), and
- ``tests/keras2onnx_applications/model_tests/`` (``nightly_build/`` in older
  checkouts: the application models that hold a recurrent layer: addition RNN,
  bAbI, IMDB, text generation, (M)LSTM-FCN, self-attention tagger, chatbot,
  DeepSpeech 1 and 2, LipNet, DeepJ music generation, NER tagger, CRNN, keras-ocr,
  resume parser, molecule VAE)

of https://github.com/onnx/tensorflow-onnx (snapshot of 2026-07-01, commit
6537fcb2ee98) is rebuilt here in the form the test writes it: a ``Sequential``
stays ``Sequential`` (unbuilt where the test leaves it unbuilt), a functional
model stays functional with the same inputs, outputs, ``Lambda`` layers and
custom layers. Only the sizes shrink (units <= 16, time <= 12, vocabularies
<= 50, tiny images), so that each model builds in seconds, and Keras 2 idioms
are written as Keras 3 spells them (``K.reverse`` -> ``keras.ops.flip``,
``keras.backend.expand_dims`` -> ``keras.ops.expand_dims``, ``weights=`` ->
``set_weights``). Parameter sweeps that differ only in a flag are reduced to
representative cases; the ``variant`` of each entry says which.

Left out, with the reason:

- ``test_LSTM_time_major_return_seq_true/false`` and
  ``test_bidirectional_time_major_true``: Keras 3 recurrent layers have no
  ``time_major``; one entry (``lstm_time_major_h5``) stands for them, a legacy
  HDF5 file whose LSTMs carry ``time_major: true`` as Keras 2 writes it.
- The recurrent-layer classes of ``tensorflow.python.keras.layers.recurrent_v2``
  (the tests' "v2" parametrisation): Keras 3 has one LSTM and one GRU.

Usage::

    from keras2onnx_corpus import ENTRIES, get, sample_inputs
    entry = get("addition_rnn_lstm")
    model = entry.build()                       # a fresh, unfitted keras.Model
    x = sample_inputs(model, np.random.default_rng(0), batch=4)

Builders need Keras 3 on the TensorFlow backend (``Lambda`` bodies use
TensorFlow ops where the test does). They do not fit, save or seed: call
``keras.utils.set_random_seed`` first for reproducible weights. An unbuilt
``Sequential`` (``entry.call_shape`` is set) is built by its first call, as
the test's ``model.predict`` builds it; :func:`build_and_call` does that.

Notes tags (``entry.notes``) used by the runner and by tests to select entries:

``lambda``          holds a ``Lambda`` layer (loads only with ``--unsafe``)
``custom-layer``    holds a layer class defined here (not registered with Keras)
``stateful``        a ``stateful=True`` recurrent layer
``masked``          a ``Masking`` layer or ``Embedding(mask_zero=True)``
``token-ids``       an input feeding an ``Embedding`` (token ids)
``float-ids``       the test feeds ``np.random.rand`` floats to that ``Embedding``
``multi-input``     more than one ``Input``
``multi-output``    more than one output
``seq2seq``         an encoder's states start a decoder (teacher forcing)
``initial-state``   a recurrent layer starts from states fed as model inputs
``unbuilt``         a ``Sequential`` without an input shape (built by its first call)
``fixed-weights``   the test sets weights by hand (do not fit)
``stochastic``      the model draws random numbers at inference
``time-distributed`` a ``TimeDistributed`` wrapper
``h5-only``         the entry is meant to be saved and read as a legacy ``.h5`` file
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

__all__ = [
    "CUSTOM_OBJECTS",
    "CorpusEntry",
    "ENTRIES",
    "REPO",
    "SNAPSHOT",
    "build_and_call",
    "get",
    "names",
    "sample_inputs",
]

REPO = "https://github.com/onnx/tensorflow-onnx"
SNAPSHOT = "6537fcb2ee9868f7446a278dc1473915cdec5d45"
UNIT = "tests/keras2onnx_unit_tests/test_layers.py"
APPS = "tests/keras2onnx_applications/model_tests"

K = keras.backend
Sequential = keras.models.Sequential
Model = keras.models.Model
Input = keras.Input


@dataclass(frozen=True)
class CorpusEntry:
    """One model of the corpus.

    Attributes:
        name: unique identifier (a valid file name).
        source: ``<path in tensorflow-onnx>::<test function>``.
        variant: which configuration of the test (its parameters, which of its
            models), empty when the test builds one model.
        build: returns a fresh ``keras.Model`` (unfitted, unsaved).
        notes: tags (see the module docstring) and free-text remarks.
        fit: whether a brief fit on random data is meaningful (``False`` where
            the test sets weights by hand).
        h5: also save and check this entry as a legacy ``.h5`` file.
        h5_patch: for ``h5-only`` entries, edits the saved ``.h5`` file in place
            (as Keras 2 would have written it) before it is read.
        call_shape: for an unbuilt ``Sequential``, the input shape without the
            batch axis that its first call uses.
    """

    name: str
    source: str
    build: Callable[[], keras.Model]
    variant: str = ""
    notes: tuple[str, ...] = ()
    fit: bool = True
    h5: bool = False
    h5_patch: Callable[[str], None] | None = None
    call_shape: tuple[int | None, ...] | None = None

    def has(self, tag: str) -> bool:
        return tag in self.notes


# --------------------------------------------------------------------------
# test_layers.py: recurrent unit tests
# --------------------------------------------------------------------------

RNN_CLASSES = {"simplernn": layers.SimpleRNN, "gru": layers.GRU, "lstm": layers.LSTM}


def simple_rnn_sequences() -> keras.Model:
    """test_simpleRNN, first model: SimpleRNN(2, return_sequences=True)."""
    inputs1 = keras.Input(shape=(3, 1))
    cls = layers.SimpleRNN(2, return_state=False, return_sequences=True)
    oname = cls(inputs1)
    return keras.Model(inputs=inputs1, outputs=[oname])


def simple_rnn_initial_state() -> keras.Model:
    """test_simpleRNN, second model: the initial state is a model input."""
    inputs2 = keras.Input(shape=(1, 2))
    state = keras.Input(shape=(5,))
    hidden_1 = layers.SimpleRNN(5, activation="relu", return_sequences=True)(
        inputs2, initial_state=[state]
    )
    output = layers.Dense(2, activation="sigmoid")(hidden_1)
    return keras.Model(inputs=[inputs2, state], outputs=output)


def simple_rnn_initial_state_return_state() -> keras.Model:
    """test_simpleRNN, third model: initial state in, final state out."""
    input = keras.Input(shape=(1, 2))
    state_in = keras.Input(shape=(10,))
    hidden_1, state_out = layers.SimpleRNN(
        10, activation="relu", return_sequences=True, return_state=True
    )(input, initial_state=[state_in])
    output = layers.Dense(2, activation="linear")(hidden_1)
    return keras.Model(inputs=[input, state_in], outputs=[output, state_out])


def gru_no_initial_state() -> keras.Model:
    """test_GRU, first model: GRU(2) from zeros."""
    inputs1 = keras.Input(shape=(3, 1))
    cls = layers.GRU(2, return_state=False, return_sequences=False)
    oname = cls(inputs1)
    return keras.Model(inputs=inputs1, outputs=[oname])


def _gru_initial_state(return_sequences: bool) -> keras.Model:
    inputs1 = keras.Input(shape=(3, 1))
    cls = layers.GRU(2, return_state=False, return_sequences=return_sequences)
    initial_state_input = keras.Input(shape=(2,))
    oname = cls(inputs1, initial_state=initial_state_input)
    return keras.Model(inputs=[inputs1, initial_state_input], outputs=[oname])


def gru_initial_state_sequences() -> keras.Model:
    """test_GRU, second model, return_sequences=True: the state is an input."""
    return _gru_initial_state(True)


def gru_initial_state_last() -> keras.Model:
    """test_GRU, second model, return_sequences=False."""
    return _gru_initial_state(False)


def gru_reset_after_sequential() -> keras.Model:
    """test_GRU_2: Sequential, GRU(reset_after=True, input_shape=(1, F)), Dense sigmoid."""
    model = keras.Sequential(name="TestGRU")
    model.add(layers.GRU(16, reset_after=True, input_shape=(1, 12)))
    model.add(layers.Dense(12, activation="sigmoid"))
    return model


def _lstm_and_rnn_cell(return_sequences: bool, use_bias: bool) -> keras.Model:
    inputs1 = keras.Input(shape=(3, 5))
    cls1 = layers.LSTM(
        units=2, return_state=True, return_sequences=return_sequences, use_bias=use_bias
    )
    cls2 = layers.RNN(
        layers.LSTMCell(units=2, use_bias=use_bias),
        return_state=True,
        return_sequences=return_sequences,
    )
    lstm1, state_h, state_c = cls1(inputs1)
    lstm2, state_h_2, state_c_2 = cls2(inputs1)
    return keras.Model(
        inputs=inputs1, outputs=[lstm1, state_h, state_c, lstm2, state_h_2, state_c_2]
    )


def lstm_return_state_last_no_bias() -> keras.Model:
    """test_LSTM[return_sequences=False, use_bias=False]: LSTM and RNN(LSTMCell), states out."""
    return _lstm_and_rnn_cell(False, False)


def lstm_return_state_sequences_bias() -> keras.Model:
    """test_LSTM[return_sequences=True, use_bias=True]."""
    return _lstm_and_rnn_cell(True, True)


def _lstm_rev(return_sequences: bool, use_bias: bool) -> keras.Model:
    inputs1 = keras.Input(shape=(3, 5))
    cls = layers.LSTM(
        units=2,
        return_state=True,
        go_backwards=True,
        return_sequences=return_sequences,
        use_bias=use_bias,
    )
    lstm1, state_h, state_c = cls(inputs1)
    return keras.Model(inputs=inputs1, outputs=[lstm1, state_h, state_c])


def lstm_go_backwards_last_bias() -> keras.Model:
    """test_LSTM_rev[return_sequences=False, use_bias=True]."""
    return _lstm_rev(False, True)


def lstm_go_backwards_sequences_no_bias() -> keras.Model:
    """test_LSTM_rev[return_sequences=True, use_bias=False]."""
    return _lstm_rev(True, False)


def lstm_with_bias_fixed_weights() -> keras.Model:
    """test_LSTM_with_bias: LSTM(1) and RNN(LSTMCell(1)) with weights set by hand."""
    inputs1 = keras.Input(shape=(1, 1))
    cls = layers.LSTM(units=1, return_state=True, return_sequences=True)
    lstm1, state_h, state_c = cls(inputs1)
    lstm2, state_h_2, state_c_2 = layers.RNN(
        layers.LSTMCell(units=1), return_state=True, return_sequences=True
    )(inputs1)
    model = keras.Model(
        inputs=inputs1, outputs=[lstm1, state_h, state_c, lstm2, state_h_2, state_c_2]
    )
    model.set_weights(
        (
            np.array([[1, 2, 3, 4]]),
            np.array([[5, 6, 7, 8]]),
            np.array([1, 2, 3, 4]),
            np.array([[1, 2, 3, 4]]),
            np.array([[5, 6, 7, 8]]),
            np.array([1, 2, 3, 4]),
        )
    )
    return model


def lstm_reshape() -> keras.Model:
    """test_LSTM_reshape: LSTM and RNN(LSTMCell) sequences, each through a Reshape."""
    input_dim = 7
    sequence_len = 3
    inputs1 = keras.Input(shape=(sequence_len, input_dim))
    cls = layers.LSTM(units=5, return_state=False, return_sequences=True)
    lstm1 = cls(inputs1)
    lstm2 = layers.RNN(layers.LSTMCell(units=5), return_state=False, return_sequences=True)(inputs1)
    output = layers.Reshape((sequence_len, 5))(lstm1)
    output_2 = layers.Reshape((sequence_len, 5))(lstm2)
    model = keras.Model(inputs=inputs1, outputs=[output, output_2])
    model.compile(optimizer="sgd", loss="mse")
    return model


def lstm_with_initializer() -> keras.Model:
    """test_LSTM_with_initializer: relu LSTM and RNN(LSTMCell) from states fed as inputs."""
    H, W, C = 1, 2, 5  # the test's N (batch) = 3 is its data's
    inputs = keras.Input(shape=(H, W), name="inputs")
    state_h = keras.Input(shape=(C,), name="state_h")
    state_c = keras.Input(shape=(C,), name="state_c")
    lstm_layer = layers.LSTM(units=C, activation="relu", return_sequences=True)(
        inputs, initial_state=[state_h, state_c]
    )
    lstm_layer_2 = layers.RNN(layers.LSTMCell(units=C, activation="relu"), return_sequences=True)(
        inputs, initial_state=[state_h, state_c]
    )
    outputs = layers.Dense(W, activation="sigmoid")(lstm_layer)
    outputs_2 = layers.Dense(W, activation="sigmoid")(lstm_layer_2)
    return keras.Model(inputs=[inputs, state_h, state_c], outputs=[outputs, outputs_2])


def _lstm_stateful(return_sequences: bool) -> keras.Model:
    lstm_dim = 2
    inp = keras.Input(batch_shape=(1, None, 1))
    out = layers.LSTM(lstm_dim, return_sequences=return_sequences, stateful=True)(inp)
    out_2 = layers.RNN(layers.LSTMCell(lstm_dim), return_sequences=return_sequences, stateful=True)(
        inp
    )
    return keras.Model(inputs=inp, outputs=[out, out_2])


def lstm_stateful_sequences() -> keras.Model:
    """test_LSTM_seqlen_none[return_sequences=True]: stateful, batch 1, time None."""
    return _lstm_stateful(True)


def lstm_stateful_last() -> keras.Model:
    """test_LSTM_seqlen_none[return_sequences=False]."""
    return _lstm_stateful(False)


def lstm_time_major() -> keras.Model:
    """test_LSTM_time_major_return_seq_true as Keras 3 can write it: the
    transposes are ``Lambda`` layers; the LSTMs get ``time_major: true`` only in
    the saved HDF5 file (:func:`patch_time_major`), as a Keras 2 file holds it."""
    inputs1 = keras.Input(shape=(3, 5))
    input_transposed = layers.Lambda(lambda t: keras.ops.transpose(t, (1, 0, 2)))(inputs1)
    lstm1, state_h, state_c = layers.LSTM(units=2, return_state=True, return_sequences=True)(
        input_transposed
    )
    lstm2, state_h_2, state_c_2 = layers.RNN(
        layers.LSTMCell(units=2), return_state=True, return_sequences=True
    )(input_transposed)
    lstm1_trans = layers.Lambda(lambda t: keras.ops.transpose(t, (1, 0, 2)))(lstm1)
    lstm2_trans = layers.Lambda(lambda t: keras.ops.transpose(t, (1, 0, 2)))(lstm2)
    return keras.Model(
        inputs=inputs1,
        outputs=[lstm1_trans, state_h, state_c, lstm2_trans, state_h_2, state_c_2],
    )


def patch_time_major(path: str) -> None:
    """Give every recurrent layer in the HDF5 file ``path`` ``time_major: true``."""
    import json

    import h5py

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] in ("LSTM", "GRU", "SimpleRNN", "RNN"):
                layer["config"]["time_major"] = True
        h5.attrs["model_config"] = json.dumps(config)


def _bidirectional_sequential(rnn_class, return_sequences: bool) -> keras.Model:
    model = keras.Sequential()
    model.add(
        layers.Bidirectional(rnn_class(7, return_sequences=return_sequences), input_shape=(5, 10))
    )
    model.add(layers.Dense(5))
    model.add(layers.Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    return model


def _bidirectional_functional(rnn_class, return_sequences: bool, merge_mode) -> keras.Model:
    sequence_len, input_dim = 5, 10
    sub_input1 = keras.Input(shape=(sequence_len, input_dim))
    sub_mapped1 = layers.Bidirectional(
        rnn_class(7, return_sequences=return_sequences),
        input_shape=(5, 10),
        merge_mode=merge_mode,
    )(sub_input1)
    return keras.Model(inputs=sub_input1, outputs=sub_mapped1)


def _bidirectional_with_bias(rnn_class) -> keras.Model:
    model = keras.Sequential()
    model.add(
        layers.Bidirectional(rnn_class(4, return_sequences=False), input_shape=(3, 5), name="bi")
    )
    rnn_layer = model.get_layer("bi")
    weights = rnn_layer.get_weights()
    weights[2] = np.random.uniform(size=weights[2].shape)
    weights[5] = weights[2]
    rnn_layer.set_weights(weights)
    return model


def _bidirectional_return_state(rnn_class) -> keras.Model:
    input1 = keras.Input(shape=(None, 5))
    states = layers.Bidirectional(rnn_class(2, return_state=True))(input1)
    return keras.Model(input1, states)


def _bidirectional_initial_states(rnn_class) -> keras.Model:
    input1 = keras.Input(shape=(None, 5))
    input2 = keras.Input(shape=(None, 5))
    states = layers.Bidirectional(rnn_class(2, return_state=True))(input1)[1:]
    out = layers.Bidirectional(rnn_class(2, return_sequences=True))(input2, initial_state=states)
    return keras.Model([input1, input2], out)


def _bidirectional_seqlen_none(rnn_class) -> keras.Model:
    model = keras.Sequential()
    model.add(layers.Embedding(39, 8))
    model.add(layers.Bidirectional(rnn_class(8, input_shape=(None, 32), return_sequences=True)))
    model.add(layers.Dense(44))
    return model


def _rnn_state_passing(rnn_class) -> keras.Model:
    input1 = keras.Input(shape=(None, 5))
    input2 = keras.Input(shape=(None, 5))
    states = rnn_class(2, return_state=True)(input1)[1:]
    out = rnn_class(2, return_sequences=True)(input2, initial_state=states)
    return keras.Model([input1, input2], out)


def _seq_dynamic_batch_size(node_func) -> keras.Model:
    data_dim = 4
    timesteps = 3
    num_neur = [8, 16, 8]
    model = keras.Sequential()
    for i in range(len(num_neur)):
        if len(num_neur) == 1:
            model.add(node_func(num_neur[i], input_shape=(timesteps, data_dim), unroll=True))
        else:
            if i < len(num_neur) - 1:
                model.add(
                    node_func(
                        num_neur[i],
                        input_shape=(timesteps, data_dim),
                        return_sequences=True,
                        unroll=True,
                    )
                )
            else:
                model.add(node_func(num_neur[i], input_shape=(timesteps, data_dim), unroll=True))
    model.compile(loss="mean_squared_error", optimizer="adam")
    return model


def _masking(rnn_class) -> keras.Model:
    timesteps, features = (3, 5)
    return keras.Sequential(
        [
            layers.Masking(mask_value=0.0, input_shape=(timesteps, features)),
            rnn_class(8, return_state=False, return_sequences=False),
        ]
    )


def _masking_bias(rnn_class) -> keras.Model:
    timesteps, features = (3, 5)
    model = keras.Sequential(
        [
            layers.Masking(mask_value=0.0, input_shape=(timesteps, features)),
            rnn_class(8, return_state=False, return_sequences=False, use_bias=True, name="rnn"),
        ]
    )
    rnn_layer = model.get_layer("rnn")
    weights = rnn_layer.get_weights()
    weights[2] = np.random.uniform(size=weights[2].shape)
    rnn_layer.set_weights(weights)
    return model


def _masking_bias_bidirectional(rnn_class) -> keras.Model:
    timesteps, features = (3, 5)
    model = keras.Sequential(
        [
            layers.Masking(mask_value=0.0, input_shape=(timesteps, features)),
            layers.Bidirectional(
                rnn_class(8, return_state=False, return_sequences=False, use_bias=True), name="bi"
            ),
        ]
    )
    rnn_layer = model.get_layer("bi")
    weights = rnn_layer.get_weights()
    weights[2] = np.random.uniform(size=weights[2].shape)
    weights[5] = weights[2]
    rnn_layer.set_weights(weights)
    return model


def _masking_value(rnn_class) -> keras.Model:
    timesteps, features = (3, 5)
    mask_value = 5.0
    return keras.Sequential(
        [
            layers.Masking(mask_value=mask_value, input_shape=(timesteps, features)),
            rnn_class(8, return_state=False, return_sequences=False),
        ]
    )


class MyPoolingMask(keras.layers.Layer):
    """test_masking_custom's layer: a masked mean over time (Keras 3 ops for ``K``)."""

    def __init__(self, **kwargs):
        self.supports_masking = True
        super().__init__(**kwargs)

    def build(self, input_shape):
        super().build(input_shape)

    def compute_mask(self, inputs, input_mask=None):
        return None

    def call(self, inputs, mask=None, **kwargs):
        if mask is not None:
            return keras.ops.sum(inputs, axis=-2) / (
                keras.ops.sum(keras.ops.cast(mask, inputs.dtype), axis=-1, keepdims=True)
                + keras.config.epsilon()
            )
        else:
            output = keras.ops.mean(inputs, axis=-2)
            return output

    def compute_output_shape(self, input_shape):
        return input_shape[:-2] + input_shape[-1:]


def masking_custom() -> keras.Model:
    """test_masking_custom: Masking, then a custom layer that consumes the mask."""
    timesteps, features = (3, 5)
    return keras.Sequential(
        [layers.Masking(mask_value=0.0, input_shape=(timesteps, features)), MyPoolingMask()]
    )


def timedistributed_dense() -> keras.Model:
    """test_timedistributed, first model: Sequential TimeDistributed(Dense)."""
    keras_model = keras.Sequential()
    keras_model.add(layers.TimeDistributed(layers.Dense(8), input_shape=(10, 16)))
    return keras_model


# --------------------------------------------------------------------------
# model_tests/test_nlp.py (the keras examples)
# --------------------------------------------------------------------------


def _addition_rnn(RNN) -> keras.Model:
    DIGITS = 3
    MAXLEN = DIGITS + 1 + DIGITS
    HIDDEN_SIZE = 16
    CHARS_LENGTH = 12
    model = keras.models.Sequential()
    model.add(RNN(HIDDEN_SIZE, input_shape=(MAXLEN, CHARS_LENGTH)))
    model.add(layers.RepeatVector(DIGITS + 1))
    model.add(RNN(HIDDEN_SIZE, return_sequences=True))
    model.add(layers.TimeDistributed(layers.Dense(CHARS_LENGTH, activation="softmax")))
    return model


def babi_rnn() -> keras.Model:
    """test_babi_rnn: story and question, each Embedding -> LSTM, concatenated."""
    RNN = layers.LSTM
    EMBED_HIDDEN_SIZE = 8
    SENT_HIDDEN_SIZE = 8
    QUERY_HIDDEN_SIZE = 8
    story_maxlen = 10
    vocab_size = 27
    query_maxlen = 6

    sentence = Input(shape=(story_maxlen,), dtype="int32")
    encoded_sentence = layers.Embedding(vocab_size, EMBED_HIDDEN_SIZE)(sentence)
    encoded_sentence = RNN(SENT_HIDDEN_SIZE)(encoded_sentence)

    question = Input(shape=(query_maxlen,), dtype="int32")
    encoded_question = layers.Embedding(vocab_size, EMBED_HIDDEN_SIZE)(question)
    encoded_question = RNN(QUERY_HIDDEN_SIZE)(encoded_question)

    merged = layers.concatenate([encoded_sentence, encoded_question])
    preds = layers.Dense(vocab_size, activation="softmax")(merged)
    return Model([sentence, question], preds)


def imdb_bidirectional_lstm() -> keras.Model:
    """test_imdb_bidirectional_lstm: Embedding(input_length), Bidirectional LSTM, sigmoid."""
    max_features = 50
    maxlen = 12
    model = Sequential()
    model.add(layers.Embedding(max_features, 8, input_length=maxlen))
    model.add(layers.Bidirectional(layers.LSTM(8)))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(1, activation="sigmoid"))
    return model


def imdb_cnn_lstm() -> keras.Model:
    """test_imdb_cnn_lstm: Embedding, Conv1D, MaxPooling1D, LSTM, sigmoid."""
    max_features = 50
    maxlen = 12
    embedding_size = 8
    kernel_size = 3
    filters = 8
    pool_size = 2
    lstm_output_size = 8
    model = Sequential()
    model.add(layers.Embedding(max_features, embedding_size, input_length=maxlen))
    model.add(layers.Dropout(0.25))
    model.add(layers.Conv1D(filters, kernel_size, padding="valid", activation="relu", strides=1))
    model.add(layers.MaxPooling1D(pool_size=pool_size))
    model.add(layers.LSTM(lstm_output_size))
    model.add(layers.Dense(1))
    model.add(layers.Activation("sigmoid"))
    return model


def imdb_lstm() -> keras.Model:
    """test_imdb_lstm: unbuilt Sequential, Embedding, LSTM with dropouts, sigmoid."""
    max_features = 50
    model = Sequential()
    model.add(layers.Embedding(max_features, 8))
    model.add(layers.LSTM(8, dropout=0.2, recurrent_dropout=0.2))
    model.add(layers.Dense(1, activation="sigmoid"))
    return model


def lstm_text_generation() -> keras.Model:
    """test_lstm_text_generation: LSTM over one-hot characters, softmax."""
    maxlen = 10
    chars_len = 12
    model = Sequential()
    model.add(layers.LSTM(16, input_shape=(maxlen, chars_len)))
    model.add(layers.Dense(chars_len, activation="softmax"))
    return model


# --------------------------------------------------------------------------
# LSTM-FCN, MLSTM-FCN (test_mlstm_fcn.py, test_keras_applications.py)
# --------------------------------------------------------------------------


def squeeze_excite_block(input):
    """MLSTM-FCN's squeeze-and-excite block (``input.shape`` for ``_keras_shape``)."""
    filters = input.shape[-1]
    se = layers.GlobalAveragePooling1D()(input)
    se = layers.Reshape((1, filters))(se)
    se = layers.Dense(
        filters // 16, activation="relu", kernel_initializer="he_normal", use_bias=False
    )(se)
    se = layers.Dense(
        filters, activation="sigmoid", kernel_initializer="he_normal", use_bias=False
    )(se)
    se = layers.multiply([input, se])
    return se


MAX_NB_VARIABLES = 6
MAX_TIMESTEPS = 5
NB_CLASS = 5


def _lstm_fcn_masked(squeeze_excite: bool) -> keras.Model:
    ip = Input(shape=(MAX_NB_VARIABLES, MAX_TIMESTEPS))

    x = layers.Masking()(ip)
    x = layers.LSTM(8)(x)
    x = layers.Dropout(0.8)(x)

    y = layers.Permute((2, 1))(ip)
    y = layers.Conv1D(16, 8, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    if squeeze_excite:
        y = squeeze_excite_block(y)

    y = layers.Conv1D(16, 5, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    if squeeze_excite:
        y = squeeze_excite_block(y)

    y = layers.Conv1D(16, 3, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)

    y = layers.GlobalAveragePooling1D()(y)

    x = layers.concatenate([x, y])
    out = layers.Dense(NB_CLASS, activation="softmax")(x)
    return Model(ip, out)


def mlstm_fcn() -> keras.Model:
    """test_MLSTM_FCN: Masking -> LSTM branch, Permute -> Conv1D + squeeze-excite branch."""
    return _lstm_fcn_masked(True)


def lstm_fcn_masked() -> keras.Model:
    """test_LSTM_FCN (test_mlstm_fcn.py): the same without squeeze-excite."""
    return _lstm_fcn_masked(False)


def lstm_fcn() -> keras.Model:
    """test_lstm_fcn (test_keras_applications.py): LSTM over one step, Conv1D branch."""
    MAX_SEQUENCE_LENGTH = 12
    NUM_CELLS = 8
    NB_CLASS = 5
    ip = Input(shape=(1, MAX_SEQUENCE_LENGTH))

    x = layers.LSTM(NUM_CELLS)(ip)
    x = layers.Dropout(0.8)(x)

    y = layers.Permute((2, 1))(ip)
    y = layers.Conv1D(8, 8, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)

    y = layers.Conv1D(8, 5, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)

    y = layers.Conv1D(8, 3, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)

    y = layers.GlobalAveragePooling1D()(y)
    x = layers.concatenate([x, y])
    out = layers.Dense(NB_CLASS, activation="softmax")(x)
    return Model(ip, out)


# --------------------------------------------------------------------------
# keras-self-attention (test_keras_applications.py::test_keras_self_attention)
# --------------------------------------------------------------------------


class SeqSelfAttention(keras.layers.Layer):
    """keras_self_attention.SeqSelfAttention (CyberZHG), additive form, Keras 3 ops.

    ``e_{t,t'} = Wa . tanh(Wt h_t + Wx h_t' + bh) + ba``, activation, masked
    softmax over ``t'``, ``v_t = sum_t' a_{t,t'} h_t'``. The mask is passed on.
    The package is not a dependency: this is its layer as the test uses it
    (``attention_activation='sigmoid'``, defaults otherwise, ``units=8``)."""

    def __init__(
        self,
        units=8,
        attention_activation=None,
        use_additive_bias=True,
        use_attention_bias=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.units = units
        self.use_additive_bias = use_additive_bias
        self.use_attention_bias = use_attention_bias
        self.attention_activation = keras.activations.get(attention_activation)

    def get_config(self):
        config = {
            "units": self.units,
            "use_additive_bias": self.use_additive_bias,
            "use_attention_bias": self.use_attention_bias,
            "attention_activation": keras.activations.serialize(self.attention_activation),
        }
        return {**super().get_config(), **config}

    def build(self, input_shape):
        feature_dim = int(input_shape[2])
        self.Wt = self.add_weight(
            shape=(feature_dim, self.units), name="Wt", initializer="glorot_normal"
        )
        self.Wx = self.add_weight(
            shape=(feature_dim, self.units), name="Wx", initializer="glorot_normal"
        )
        if self.use_additive_bias:
            self.bh = self.add_weight(shape=(self.units,), name="bh", initializer="zeros")
        self.Wa = self.add_weight(shape=(self.units, 1), name="Wa", initializer="glorot_normal")
        if self.use_attention_bias:
            self.ba = self.add_weight(shape=(1,), name="ba", initializer="zeros")
        super().build(input_shape)

    def call(self, inputs, mask=None, **kwargs):
        ops = keras.ops
        input_shape = ops.shape(inputs)
        batch_size, input_len = input_shape[0], input_shape[1]
        q = ops.expand_dims(ops.matmul(inputs, self.Wt), 2)
        k = ops.expand_dims(ops.matmul(inputs, self.Wx), 1)
        h = ops.tanh(q + k + self.bh) if self.use_additive_bias else ops.tanh(q + k)
        e = ops.matmul(h, self.Wa)
        if self.use_attention_bias:
            e = e + self.ba
        e = ops.reshape(e, (batch_size, input_len, input_len))
        if self.attention_activation is not None:
            e = self.attention_activation(e)
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, e.dtype), axis=-1)
            e = e - 10000.0 * (1.0 - mask * ops.transpose(mask, (0, 2, 1)))
        e = ops.exp(e - ops.max(e, axis=-1, keepdims=True))
        a = e / ops.sum(e, axis=-1, keepdims=True)
        return ops.matmul(a, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask


def keras_self_attention() -> keras.Model:
    """test_keras_self_attention: unbuilt Sequential, Embedding(mask_zero),
    BiLSTM, SeqSelfAttention, Dense."""
    model = keras.models.Sequential()
    model.add(layers.Embedding(input_dim=50, output_dim=8, mask_zero=True))
    model.add(layers.Bidirectional(layers.LSTM(units=8, return_sequences=True)))
    model.add(SeqSelfAttention(attention_activation="sigmoid"))
    model.add(layers.Dense(units=5))
    return model


# --------------------------------------------------------------------------
# test_chatbot.py (Ossas_ChatBot)
# --------------------------------------------------------------------------


def chatbot() -> keras.Model:
    """test_chatbot: masked BiLSTM encoder, masked LSTM decoder from its states,
    attention over encoder steps multiplied into the decoder's steps."""
    vocabulary_size = 40
    embedding_dim = int(pow(vocabulary_size, 1.0 / 4))
    latent_dim = 8
    encoder_inputs = Input(shape=(None,), name="encoder_input")
    encoder_embedding = layers.Embedding(
        vocabulary_size, embedding_dim, mask_zero=True, name="encoder_Embedding"
    )(encoder_inputs)
    encoder = layers.Bidirectional(
        layers.LSTM(latent_dim, return_sequences=True, return_state=True, dropout=0.5),
        name="encoder_BiLSTM",
    )
    encoder_outputs, fw_state_h, fw_state_c, bw_state_h, bw_state_c = encoder(encoder_embedding)
    state_h = layers.Concatenate(axis=-1, name="encoder_state_h")([fw_state_h, bw_state_h])
    state_c = layers.Concatenate(axis=-1, name="encoder_state_c")([fw_state_c, bw_state_c])
    encoder_states = [state_h, state_c]

    decoder_inputs = Input(shape=(None,), name="decoder_input")
    decoder_embedding = layers.Embedding(
        vocabulary_size, embedding_dim, mask_zero=True, name="decoder_embedding"
    )(decoder_inputs)
    decoder_lstm = layers.LSTM(
        latent_dim * 2, return_sequences=True, return_state=True, name="decoder_LSTM", dropout=0.5
    )
    decoder_outputs, _, _ = decoder_lstm(decoder_embedding, initial_state=encoder_states)

    attention = layers.Dense(1, activation="tanh")(encoder_outputs)
    attention = layers.Flatten()(attention)
    attention = layers.Activation("softmax")(attention)
    attention = layers.RepeatVector(latent_dim * 2)(attention)
    attention = layers.Permute([2, 1])(attention)
    sent_dense = layers.Multiply()([decoder_outputs, attention])

    decoder_dense = layers.Dense(vocabulary_size, activation="softmax", name="dense_layer")
    decoder_outputs = decoder_dense(sent_dense)
    return Model([encoder_inputs, decoder_inputs], decoder_outputs)


# --------------------------------------------------------------------------
# test_deep_speech.py (rolczynski/Automatic-Speech-Recognition)
# --------------------------------------------------------------------------


def deep_speech() -> keras.Model:
    """test_deep_speech: Lambda expand_dims, Conv2D over time, Lambda squeeze,
    TimeDistributed Dense, Bidirectional LSTM (merge_mode='sum')."""
    input_dim = 8
    output_dim = 10
    context = 2
    units = 16
    dropouts = (0.1, 0.1, 0)

    input_tensor = layers.Input([None, input_dim], name="X")
    x = layers.Lambda(keras.ops.expand_dims, arguments=dict(axis=-1))(input_tensor)
    x = layers.ZeroPadding2D(padding=(context, 0))(x)
    receptive_field = (2 * context + 1, input_dim)
    x = layers.Conv2D(filters=units, kernel_size=receptive_field)(x)
    x = layers.Lambda(keras.ops.squeeze, arguments=dict(axis=2))(x)
    x = layers.ReLU(max_value=20)(x)
    x = layers.Dropout(rate=dropouts[0])(x)

    x = layers.TimeDistributed(layers.Dense(units))(x)
    x = layers.ReLU(max_value=20)(x)
    x = layers.Dropout(rate=dropouts[1])(x)

    x = layers.TimeDistributed(layers.Dense(units))(x)
    x = layers.ReLU(max_value=20)(x)
    x = layers.Dropout(rate=dropouts[2])(x)

    x = layers.Bidirectional(layers.LSTM(units, return_sequences=True), merge_mode="sum")(x)
    output_tensor = layers.TimeDistributed(layers.Dense(output_dim))(x)
    return keras.Model(input_tensor, output_tensor, name="DeepSpeech")


def deep_speech_2() -> keras.Model:
    """test_deep_speech_2: strided Conv2D front end, Reshape([-1, F]), five
    Bidirectional GRUs (reset_after), TimeDistributed Dense layers."""
    input_dim = 8
    output_dim = 10
    rnn_units = 8
    input_tensor = layers.Input([None, input_dim], name="X")
    x = layers.Lambda(keras.ops.expand_dims, arguments=dict(axis=-1))(input_tensor)
    x = layers.Conv2D(
        filters=4, kernel_size=[5, 5], strides=[2, 2], padding="same", use_bias=False, name="conv_1"
    )(x)
    x = layers.BatchNormalization(name="conv_1_bn")(x)
    x = layers.ReLU(name="conv_1_relu")(x)
    x = layers.Conv2D(
        filters=4, kernel_size=[5, 3], strides=[1, 2], padding="same", use_bias=False, name="conv_2"
    )(x)
    x = layers.BatchNormalization(name="conv_2_bn")(x)
    x = layers.ReLU(name="conv_2_relu")(x)
    x = layers.Reshape([-1, input_dim // 4 * 4])(x)

    for i in [1, 2, 3, 4, 5]:
        recurrent = layers.GRU(
            units=rnn_units,
            activation="tanh",
            recurrent_activation="sigmoid",
            use_bias=True,
            return_sequences=True,
            reset_after=True,
            name="gru_" + str(i),
        )
        x = layers.Bidirectional(recurrent, name="bidirectional" + str(i), merge_mode="concat")(x)
        x = layers.Dropout(rate=0.5)(x) if i < 5 else x

    x = layers.TimeDistributed(layers.Dense(units=rnn_units * 2), name="dense_1")(x)
    x = layers.ReLU(name="dense_1_relu")(x)
    x = layers.Dropout(rate=0.5)(x)
    output_tensor = layers.TimeDistributed(layers.Dense(units=output_dim), name="dense_2")(x)
    return keras.Model(input_tensor, output_tensor, name="DeepSpeech2")


# --------------------------------------------------------------------------
# test_lipnet.py (rizkiarm/LipNet)
# --------------------------------------------------------------------------


def lipnet() -> keras.Model:
    """test_LipNet: Conv3D/MaxPooling3D over frames, TimeDistributed(Flatten),
    two Bidirectional GRUs, softmax per frame."""
    frames_n, img_w, img_h, img_c = 4, 16, 16, 3
    output_size = 8
    input_shape = (frames_n, img_w, img_h, img_c)
    input_data = Input(name="the_input", shape=input_shape, dtype="float32")

    zero1 = layers.ZeroPadding3D(padding=(1, 2, 2), name="zero1")(input_data)
    conv1 = layers.Conv3D(
        4,
        (3, 5, 5),
        strides=(1, 2, 2),
        activation="relu",
        kernel_initializer="he_normal",
        name="conv1",
    )(zero1)
    maxp1 = layers.MaxPooling3D(pool_size=(1, 2, 2), strides=(1, 2, 2), name="max1")(conv1)
    drop1 = layers.Dropout(0.5)(maxp1)

    zero2 = layers.ZeroPadding3D(padding=(1, 2, 2), name="zero2")(drop1)
    conv2 = layers.Conv3D(
        4,
        (3, 5, 5),
        strides=(1, 1, 1),
        activation="relu",
        kernel_initializer="he_normal",
        name="conv2",
    )(zero2)
    maxp2 = layers.MaxPooling3D(pool_size=(1, 2, 2), strides=(1, 2, 2), name="max2")(conv2)
    drop2 = layers.Dropout(0.5)(maxp2)

    zero3 = layers.ZeroPadding3D(padding=(1, 1, 1), name="zero3")(drop2)
    conv3 = layers.Conv3D(
        4,
        (3, 3, 3),
        strides=(1, 1, 1),
        activation="relu",
        kernel_initializer="he_normal",
        name="conv3",
    )(zero3)
    maxp3 = layers.MaxPooling3D(pool_size=(1, 2, 2), strides=(1, 2, 2), name="max3")(conv3)
    drop3 = layers.Dropout(0.5)(maxp3)

    resh1 = layers.TimeDistributed(layers.Flatten())(drop3)
    gru_1 = layers.Bidirectional(
        layers.GRU(8, return_sequences=True, kernel_initializer="Orthogonal", name="gru1"),
        merge_mode="concat",
    )(resh1)
    gru_2 = layers.Bidirectional(
        layers.GRU(8, return_sequences=True, kernel_initializer="Orthogonal", name="gru2"),
        merge_mode="concat",
    )(gru_1)
    dense1 = layers.Dense(output_size, kernel_initializer="he_normal", name="dense1")(gru_2)
    y_pred = layers.Activation("softmax", name="softmax")(dense1)
    return Model(inputs=input_data, outputs=y_pred)


# --------------------------------------------------------------------------
# test_music_generation.py (calclavia/DeepJ)
# --------------------------------------------------------------------------

NUM_STYLES = 3
NUM_OCTAVES = 2
OCTAVE = 4
NUM_NOTES = NUM_OCTAVES * OCTAVE
NOTES_PER_BAR = 4
SEQ_LEN = 4
OCTAVE_UNITS = 4
STYLE_UNITS = 4
NOTE_UNITS = 3
TIME_AXIS_UNITS = 8
NOTE_AXIS_UNITS = 8
TIME_AXIS_LAYERS = 2
NOTE_AXIS_LAYERS = 2


def one_hot(i, nb_classes):
    arr = np.zeros((nb_classes,))
    arr[i] = 1
    return arr


def pitch_pos_in_f(time_steps):
    """Returns a constant containing pitch position of each note"""

    def f(x):
        note_ranges = tf.range(NUM_NOTES, dtype="float32") / NUM_NOTES
        repeated_ranges = tf.tile(note_ranges, [tf.shape(x)[0] * time_steps])
        return tf.reshape(repeated_ranges, [tf.shape(x)[0], time_steps, NUM_NOTES, 1])

    return f


def pitch_class_in_f(time_steps):
    """Returns a constant containing pitch class of each note"""

    def f(x):
        pitch_class_matrix = np.array([one_hot(n % OCTAVE, OCTAVE) for n in range(NUM_NOTES)])
        pitch_class_matrix = tf.constant(pitch_class_matrix, dtype="float32")
        pitch_class_matrix = tf.reshape(pitch_class_matrix, [1, 1, NUM_NOTES, OCTAVE])
        return tf.tile(pitch_class_matrix, [tf.shape(x)[0], time_steps, 1, 1])

    return f


def pitch_bins_f(time_steps):
    def f(x):
        bins = tf.reduce_sum([x[:, :, i::OCTAVE, 0] for i in range(OCTAVE)], axis=3)
        bins = tf.tile(bins, [NUM_OCTAVES, 1, 1])
        bins = tf.reshape(bins, [tf.shape(x)[0], time_steps, NUM_NOTES, 1])
        return bins

    return f


def time_axis(dropout):
    def f(notes, beat, style):
        time_steps = int(notes.shape[1])
        note_octave = layers.TimeDistributed(
            layers.Conv1D(OCTAVE_UNITS, 2 * OCTAVE, padding="same")
        )(notes)
        note_octave = layers.Activation("tanh")(note_octave)
        note_octave = layers.Dropout(dropout)(note_octave)

        note_features = layers.Concatenate()(
            [
                layers.Lambda(pitch_pos_in_f(time_steps))(notes),
                layers.Lambda(pitch_class_in_f(time_steps))(notes),
                layers.Lambda(pitch_bins_f(time_steps))(notes),
                note_octave,
                layers.TimeDistributed(layers.RepeatVector(NUM_NOTES))(beat),
            ]
        )
        x = note_features
        x = layers.Permute((2, 1, 3))(x)
        for _ in range(TIME_AXIS_LAYERS):
            style_proj = layers.Dense(int(x.shape[3]))(style)
            style_proj = layers.TimeDistributed(layers.RepeatVector(NUM_NOTES))(style_proj)
            style_proj = layers.Activation("tanh")(style_proj)
            style_proj = layers.Dropout(dropout)(style_proj)
            style_proj = layers.Permute((2, 1, 3))(style_proj)
            x = layers.Add()([x, style_proj])
            x = layers.TimeDistributed(layers.LSTM(TIME_AXIS_UNITS, return_sequences=True))(x)
            x = layers.Dropout(dropout)(x)
        return layers.Permute((2, 1, 3))(x)

    return f


def note_axis(dropout):
    dense_layer_cache = {}
    lstm_layer_cache = {}
    note_dense = layers.Dense(2, activation="sigmoid", name="note_dense")
    volume_dense = layers.Dense(1, name="volume_dense")

    def f(x, chosen, style):
        time_steps = int(x.shape[1])
        shift_chosen = layers.Lambda(
            lambda x: tf.pad(x[:, :, :-1, :], [[0, 0], [0, 0], [1, 0], [0, 0]])
        )(chosen)
        shift_chosen = layers.Reshape((time_steps, NUM_NOTES, -1))(shift_chosen)
        x = layers.Concatenate(axis=3)([x, shift_chosen])
        for l in range(NOTE_AXIS_LAYERS):  # noqa: E741 (the test's name)
            # the test hard-codes Dense(259) and Dense(128): TIME_AXIS_UNITS + NOTE_UNITS
            # and NOTE_AXIS_UNITS at its sizes
            dense_layer_cache[0] = layers.Dense(TIME_AXIS_UNITS + NOTE_UNITS)
            dense_layer_cache[1] = layers.Dense(NOTE_AXIS_UNITS)
            style_proj = dense_layer_cache[l](style)
            style_proj = layers.TimeDistributed(layers.RepeatVector(NUM_NOTES))(style_proj)
            style_proj = layers.Activation("tanh")(style_proj)
            style_proj = layers.Dropout(dropout)(style_proj)
            x = layers.Add()([x, style_proj])
            if l not in lstm_layer_cache:
                lstm_layer_cache[l] = layers.LSTM(NOTE_AXIS_UNITS, return_sequences=True)
            x = layers.TimeDistributed(lstm_layer_cache[l])(x)
            x = layers.Dropout(dropout)(x)
        return layers.Concatenate()([note_dense(x), volume_dense(x)])

    return f


def deepj_build_models(time_steps=SEQ_LEN, input_dropout=0.2, dropout=0.5):
    """DeepJ's ``build_models``: the training model, the time-axis model and
    the note-axis (generation) model, sharing layers."""
    notes_in = Input((time_steps, NUM_NOTES, NOTE_UNITS))
    beat_in = Input((time_steps, NOTES_PER_BAR))
    style_in = Input((time_steps, NUM_STYLES))
    chosen_in = Input((time_steps, NUM_NOTES, NOTE_UNITS))

    notes = layers.Dropout(input_dropout)(notes_in)
    beat = layers.Dropout(input_dropout)(beat_in)
    chosen = layers.Dropout(input_dropout)(chosen_in)

    style_l = layers.Dense(STYLE_UNITS, name="style")
    style = style_l(style_in)

    time_out = time_axis(dropout)(notes, beat, style)
    naxis = note_axis(dropout)
    notes_out = naxis(time_out, chosen, style)

    model = Model([notes_in, chosen_in, beat_in, style_in], [notes_out])
    time_model = Model([notes_in, beat_in, style_in], [time_out])

    note_features = Input((1, NUM_NOTES, TIME_AXIS_UNITS), name="note_features")
    chosen_gen_in = Input((1, NUM_NOTES, NOTE_UNITS), name="chosen_gen_in")
    style_gen_in = Input((1, NUM_STYLES), name="style_in")
    chosen_gen = layers.Dropout(input_dropout)(chosen_gen_in)
    style_gen = style_l(style_gen_in)
    note_gen_out = naxis(note_features, chosen_gen, style_gen)
    note_model = Model([note_features, chosen_gen_in, style_gen_in], note_gen_out)
    return model, time_model, note_model


def music_generation_model() -> keras.Model:
    return deepj_build_models()[0]


def music_generation_time_model() -> keras.Model:
    return deepj_build_models()[1]


def music_generation_note_model() -> keras.Model:
    return deepj_build_models()[2]


# --------------------------------------------------------------------------
# test_name_entity_recognition.py (kamalkraj/Named-Entity-Recognition-with-Bidirectional-LSTM-CNNs)
# --------------------------------------------------------------------------


def name_entity_recognition() -> keras.Model:
    """test_name_entity_recognition: word and casing ids, characters through
    TimeDistributed(Embedding, Conv1D, MaxPooling1D, Flatten), BiLSTM, softmax tags."""
    chars = 6
    words_input = Input(shape=(None,), dtype="int32", name="words_input")
    words = layers.Embedding(input_dim=10, output_dim=4, trainable=False)(words_input)
    casing_input = Input(shape=(None,), dtype="int32", name="casing_input")
    casing = layers.Embedding(output_dim=4, input_dim=12, trainable=False)(casing_input)
    character_input = Input(shape=(None, chars), name="char_input")
    embed_char_out = layers.TimeDistributed(layers.Embedding(26, 4), name="char_embedding")(
        character_input
    )
    dropout = layers.Dropout(0.5)(embed_char_out)
    conv1d_out = layers.TimeDistributed(
        layers.Conv1D(kernel_size=3, filters=4, padding="same", activation="tanh", strides=1)
    )(dropout)
    maxpool_out = layers.TimeDistributed(layers.MaxPooling1D(chars))(conv1d_out)
    char = layers.TimeDistributed(layers.Flatten())(maxpool_out)
    char = layers.Dropout(0.5)(char)
    output = layers.concatenate([words, casing, char])
    output = layers.Bidirectional(
        layers.LSTM(8, return_sequences=True, dropout=0.50, recurrent_dropout=0.25)
    )(output)
    output = layers.TimeDistributed(layers.Dense(6, activation="softmax"))(output)
    return Model(inputs=[words_input, casing_input, character_input], outputs=[output])


# --------------------------------------------------------------------------
# test_crnn.py (qjadud1994/CRNN-Keras)
# --------------------------------------------------------------------------


def _crnn(rnn, output_shape: bool = False) -> keras.Model:
    """test_CRNN_LSTM / test_CRNN_GRU. With ``output_shape``, the reversing
    ``Lambda`` layers get ``output_shape=``, as Keras 3's load error for the
    plain form ("could not automatically infer the shape of the Lambda's
    output") asks a user to do."""
    img_w, img_h = 32, 16
    num_classes = 10
    f = (4, 4, 8, 8, 8, 8, 8)
    input_shape = (img_w, img_h, 1)
    inputs = Input(name="the_input", shape=input_shape, dtype="float32")

    inner = layers.Conv2D(
        f[0], (3, 3), padding="same", name="conv1", kernel_initializer="he_normal"
    )(inputs)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.MaxPooling2D(pool_size=(2, 2), name="max1")(inner)

    inner = layers.Conv2D(
        f[1], (3, 3), padding="same", name="conv2", kernel_initializer="he_normal"
    )(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.MaxPooling2D(pool_size=(2, 2), name="max2")(inner)

    inner = layers.Conv2D(
        f[2], (3, 3), padding="same", name="conv3", kernel_initializer="he_normal"
    )(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.Conv2D(
        f[3], (3, 3), padding="same", name="conv4", kernel_initializer="he_normal"
    )(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.MaxPooling2D(pool_size=(1, 2), name="max3")(inner)

    inner = layers.Conv2D(
        f[4], (3, 3), padding="same", name="conv5", kernel_initializer="he_normal"
    )(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.Conv2D(f[5], (3, 3), padding="same", name="conv6")(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)
    inner = layers.MaxPooling2D(pool_size=(1, 2), name="max4")(inner)

    inner = layers.Conv2D(
        f[6], (2, 2), padding="same", kernel_initializer="he_normal", name="con7"
    )(inner)
    inner = layers.BatchNormalization()(inner)
    inner = layers.Activation("relu")(inner)

    # CNN to RNN: (None, 8, 1, 8) -> (None, 8, 8)
    inner = layers.Reshape(target_shape=((img_w // 4, (img_h // 16) * f[6])), name="reshape")(inner)
    inner = layers.Dense(8, activation="relu", kernel_initializer="he_normal", name="dense1")(inner)

    n = "lstm" if rnn is layers.LSTM else "gru"
    rnn_1 = rnn(8, return_sequences=True, kernel_initializer="he_normal", name=f"{n}1")(inner)
    rnn_1b = rnn(
        8, return_sequences=True, go_backwards=True, kernel_initializer="he_normal", name=f"{n}1_b"
    )(inner)
    shape = {"output_shape": (img_w // 4, 8)} if output_shape else {}
    reversed_rnn_1b = layers.Lambda(
        lambda inputTensor: keras.ops.flip(inputTensor, axis=1), **shape
    )(rnn_1b)
    rnn1_merged = layers.add([rnn_1, reversed_rnn_1b])
    rnn1_merged = layers.BatchNormalization()(rnn1_merged)

    rnn_2 = rnn(8, return_sequences=True, kernel_initializer="he_normal", name=f"{n}2")(rnn1_merged)
    rnn_2b = rnn(
        8, return_sequences=True, go_backwards=True, kernel_initializer="he_normal", name=f"{n}2_b"
    )(rnn1_merged)
    reversed_rnn_2b = layers.Lambda(
        lambda inputTensor: keras.ops.flip(inputTensor, axis=1), **shape
    )(rnn_2b)
    rnn2_merged = layers.concatenate([rnn_2, reversed_rnn_2b])
    rnn2_merged = layers.BatchNormalization()(rnn2_merged)

    inner = layers.Dense(num_classes, kernel_initializer="he_normal", name="dense2")(rnn2_merged)
    y_pred = layers.Activation("softmax", name="softmax")(inner)
    return Model(inputs=[inputs], outputs=y_pred)


def _crnn_lstm_output_shape() -> keras.Model:
    return _crnn(layers.LSTM, output_shape=True)


# --------------------------------------------------------------------------
# test_ocr.py (faustomorales/keras-ocr)
# --------------------------------------------------------------------------


def _repeat(x, num_repeats):
    ones = tf.ones((1, num_repeats), dtype="int32")
    x = tf.reshape(x, shape=(-1, 1))
    x = tf.matmul(x, ones)
    return tf.reshape(x, [-1])


def _meshgrid(height, width):
    x_linspace = tf.linspace(-1.0, 1.0, width)
    y_linspace = tf.linspace(-1.0, 1.0, height)
    x_coordinates, y_coordinates = tf.meshgrid(x_linspace, y_linspace)
    x_coordinates = tf.reshape(x_coordinates, shape=(1, -1))
    y_coordinates = tf.reshape(y_coordinates, shape=(1, -1))
    ones = tf.ones_like(x_coordinates)
    indices_grid = tf.concat([x_coordinates, y_coordinates, ones], 0)
    return indices_grid


def _transform(inputs):
    """keras-ocr's spatial transformer (bilinear sampling), as the test writes it."""
    locnet_x, locnet_y = inputs
    output_size = locnet_x.shape[1:]
    batch_size = tf.shape(locnet_x)[0]
    height = tf.shape(locnet_x)[1]
    width = tf.shape(locnet_x)[2]
    num_channels = tf.shape(locnet_x)[3]

    locnet_y = tf.reshape(locnet_y, shape=(batch_size, 2, 3))
    locnet_y = tf.reshape(locnet_y, (-1, 2, 3))
    locnet_y = tf.cast(locnet_y, "float32")

    output_height = output_size[0]
    output_width = output_size[1]
    indices_grid = _meshgrid(output_height, output_width)
    indices_grid = tf.expand_dims(indices_grid, 0)
    indices_grid = tf.reshape(indices_grid, [-1])
    indices_grid = tf.tile(indices_grid, tf.stack([batch_size]))
    indices_grid = tf.reshape(indices_grid, tf.stack([batch_size, 3, -1]))

    transformed_grid = tf.matmul(locnet_y, indices_grid)
    x_s = tf.slice(transformed_grid, [0, 0, 0], [-1, 1, -1])
    y_s = tf.slice(transformed_grid, [0, 1, 0], [-1, 1, -1])
    x = tf.reshape(x_s, [-1])
    y = tf.reshape(y_s, [-1])

    height_float = tf.cast(height, dtype="float32")
    width_float = tf.cast(width, dtype="float32")
    output_height = output_size[0]
    output_width = output_size[1]

    x = tf.cast(x, dtype="float32")
    y = tf.cast(y, dtype="float32")
    x = 0.5 * (x + 1.0) * width_float
    y = 0.5 * (y + 1.0) * height_float

    x0 = tf.cast(tf.floor(x), "int32")
    x1 = x0 + 1
    y0 = tf.cast(tf.floor(y), "int32")
    y1 = y0 + 1

    max_y = tf.cast(height - 1, dtype="int32")
    max_x = tf.cast(width - 1, dtype="int32")
    zero = tf.zeros([], dtype="int32")

    x0 = tf.clip_by_value(x0, zero, max_x)
    x1 = tf.clip_by_value(x1, zero, max_x)
    y0 = tf.clip_by_value(y0, zero, max_y)
    y1 = tf.clip_by_value(y1, zero, max_y)

    flat_image_dimensions = width * height
    pixels_batch = tf.range(batch_size) * flat_image_dimensions
    flat_output_dimensions = output_height * output_width
    base = _repeat(pixels_batch, flat_output_dimensions)
    base_y0 = base + y0 * width
    base_y1 = base + y1 * width
    indices_a = base_y0 + x0
    indices_b = base_y1 + x0
    indices_c = base_y0 + x1
    indices_d = base_y1 + x1

    flat_image = tf.reshape(locnet_x, shape=(-1, num_channels))
    flat_image = tf.cast(flat_image, dtype="float32")
    pixel_values_a = tf.gather(flat_image, indices_a)
    pixel_values_b = tf.gather(flat_image, indices_b)
    pixel_values_c = tf.gather(flat_image, indices_c)
    pixel_values_d = tf.gather(flat_image, indices_d)

    x0 = tf.cast(x0, "float32")
    x1 = tf.cast(x1, "float32")
    y0 = tf.cast(y0, "float32")
    y1 = tf.cast(y1, "float32")

    area_a = tf.expand_dims(((x1 - x) * (y1 - y)), 1)
    area_b = tf.expand_dims(((x1 - x) * (y - y0)), 1)
    area_c = tf.expand_dims(((x - x0) * (y1 - y)), 1)
    area_d = tf.expand_dims(((x - x0) * (y - y0)), 1)
    transformed_image = tf.add_n(
        [
            area_a * pixel_values_a,
            area_b * pixel_values_b,
            area_c * pixel_values_c,
            area_d * pixel_values_d,
        ]
    )
    transformed_image = tf.reshape(
        transformed_image, shape=(batch_size, output_height, output_width, num_channels)
    )
    return transformed_image


def keras_ocr() -> keras.Model:
    """test_OCR: VGG-ish convolutions, a spatial transformer (nested localisation
    Model + Lambda), Dense, two pairs of forward/backward LSTMs, softmax, and a
    Lambda that drops the first steps."""
    height = 15
    width = 24
    color = False
    filters = (4, 4, 8, 8, 8, 8, 8)
    rnn_units = (8, 8)
    dropout = 0.25
    rnn_steps_to_discard = 2
    pool_size = 2
    stn = True
    inputs = keras.layers.Input((height, width, 3 if color else 1))
    x = keras.layers.Permute((2, 1, 3))(inputs)
    x = keras.layers.Lambda(lambda x: x[:, :, ::-1])(x)
    x = keras.layers.Conv2D(filters[0], (3, 3), activation="relu", padding="same", name="conv_1")(x)
    x = keras.layers.Conv2D(filters[1], (3, 3), activation="relu", padding="same", name="conv_2")(x)
    x = keras.layers.Conv2D(filters[2], (3, 3), activation="relu", padding="same", name="conv_3")(x)
    x = keras.layers.BatchNormalization(name="bn_3")(x)
    x = keras.layers.MaxPooling2D(pool_size=(pool_size, pool_size), name="maxpool_3")(x)
    x = keras.layers.Conv2D(filters[3], (3, 3), activation="relu", padding="same", name="conv_4")(x)
    x = keras.layers.Conv2D(filters[4], (3, 3), activation="relu", padding="same", name="conv_5")(x)
    x = keras.layers.BatchNormalization(name="bn_5")(x)
    x = keras.layers.MaxPooling2D(pool_size=(pool_size, pool_size), name="maxpool_5")(x)
    x = keras.layers.Conv2D(filters[5], (3, 3), activation="relu", padding="same", name="conv_6")(x)
    x = keras.layers.Conv2D(filters[6], (3, 3), activation="relu", padding="same", name="conv_7")(x)
    x = keras.layers.BatchNormalization(name="bn_7")(x)
    if stn:
        stn_input_output_shape = (width // pool_size**2, height // pool_size**2, filters[6])
        stn_input_layer = keras.layers.Input(shape=stn_input_output_shape)
        locnet_y = keras.layers.Conv2D(4, (5, 5), padding="same", activation="relu")(
            stn_input_layer
        )
        locnet_y = keras.layers.Conv2D(4, (5, 5), padding="same", activation="relu")(locnet_y)
        locnet_y = keras.layers.Flatten()(locnet_y)
        locnet_y = keras.layers.Dense(8, activation="relu")(locnet_y)
        last = keras.layers.Dense(6)
        locnet_y = last(locnet_y)
        # the test passes weights=[zeros, identity] to the Dense (Keras 3 has no weights=)
        last.set_weights(
            [np.zeros((8, 6), dtype="float32"), np.float32([[1, 0, 0], [0, 1, 0]]).flatten()]
        )
        localization_net = keras.models.Model(inputs=stn_input_layer, outputs=locnet_y)
        x = keras.layers.Lambda(_transform, output_shape=stn_input_output_shape)(
            [x, localization_net(x)]
        )
    x = keras.layers.Reshape(
        target_shape=(width // pool_size**2, (height // pool_size**2) * filters[-1]), name="reshape"
    )(x)
    x = keras.layers.Dense(rnn_units[0], activation="relu", name="fc_9")(x)
    rnn_1_forward = keras.layers.LSTM(
        rnn_units[0], kernel_initializer="he_normal", return_sequences=True, name="lstm_10"
    )(x)
    rnn_1_back = keras.layers.LSTM(
        rnn_units[0],
        kernel_initializer="he_normal",
        go_backwards=True,
        return_sequences=True,
        name="lstm_10_back",
    )(x)
    rnn_1_add = keras.layers.Add()([rnn_1_forward, rnn_1_back])
    rnn_2_forward = keras.layers.LSTM(
        rnn_units[1], kernel_initializer="he_normal", return_sequences=True, name="lstm_11"
    )(rnn_1_add)
    rnn_2_back = keras.layers.LSTM(
        rnn_units[1],
        kernel_initializer="he_normal",
        go_backwards=True,
        return_sequences=True,
        name="lstm_11_back",
    )(rnn_1_add)
    x = keras.layers.Concatenate()([rnn_2_forward, rnn_2_back])
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(12, kernel_initializer="he_normal", activation="softmax", name="fc_12")(
        x
    )
    x = keras.layers.Lambda(lambda x: x[:, rnn_steps_to_discard:])(x)
    return keras.models.Model(inputs=inputs, outputs=x)


# --------------------------------------------------------------------------
# test_resume_parser.py (chen0040/keras-english-resume-parser-and-analyzer)
# --------------------------------------------------------------------------


def resume_cnn_lstm() -> keras.Model:
    """test_CNN_LSTM: Embedding(input_length), SpatialDropout1D, Conv1D,
    MaxPooling1D, LSTM, softmax."""
    max_len = 12
    vocab_size = 50
    model = Sequential()
    model.add(layers.Embedding(input_dim=vocab_size, input_length=max_len, output_dim=8))
    model.add(layers.SpatialDropout1D(0.2))
    model.add(layers.Conv1D(filters=8, kernel_size=5, padding="same", activation="relu"))
    model.add(layers.MaxPooling1D(pool_size=4))
    model.add(layers.LSTM(8))
    model.add(layers.Dense(units=6, activation="softmax"))
    return model


def resume_bidirectional_lstm() -> keras.Model:
    """test_Bidirectional_LSTM: Embedding(input_length), SpatialDropout1D, BiLSTM with dropouts."""
    max_len = 12
    vocab_size = 50
    embedding_size = 8
    model = Sequential()
    model.add(
        layers.Embedding(input_dim=vocab_size, output_dim=embedding_size, input_length=max_len)
    )
    model.add(layers.SpatialDropout1D(0.2))
    model.add(
        layers.Bidirectional(
            layers.LSTM(
                units=8, dropout=0.2, recurrent_dropout=0.2, input_shape=(max_len, embedding_size)
            )
        )
    )
    model.add(layers.Dense(6, activation="softmax"))
    return model


# --------------------------------------------------------------------------
# test_autoencoder.py (maxhodak/keras-molecules)
# --------------------------------------------------------------------------


def molecule_vae() -> keras.Model:
    """test_autoencoder: MoleculeVAE's autoencoder: Conv1D encoder, a sampling
    Lambda (keras.random.normal at inference), RepeatVector, three GRUs,
    TimeDistributed softmax."""
    max_length = 12
    charset_length = 10
    latent_rep_size = 8
    epsilon_std = 0.01

    def _buildEncoder(x):
        h = layers.Convolution1D(4, 3, activation="relu", name="conv_1")(x)
        h = layers.Convolution1D(4, 3, activation="relu", name="conv_2")(h)
        h = layers.Convolution1D(5, 3, activation="relu", name="conv_3")(h)
        h = layers.Flatten(name="flatten_1")(h)
        h = layers.Dense(16, activation="relu", name="dense_1")(h)

        def sampling(args):
            z_mean_, z_log_var_ = args
            batch_size = keras.ops.shape(z_mean_)[0]
            epsilon = keras.random.normal(
                shape=(batch_size, latent_rep_size), mean=0.0, stddev=epsilon_std
            )
            return z_mean_ + keras.ops.exp(z_log_var_ / 2) * epsilon

        z_mean = layers.Dense(latent_rep_size, name="z_mean", activation="linear")(h)
        z_log_var = layers.Dense(latent_rep_size, name="z_log_var", activation="linear")(h)
        return layers.Lambda(sampling, output_shape=(latent_rep_size,), name="lambda")(
            [z_mean, z_log_var]
        )

    def _buildDecoder(z):
        h = layers.Dense(latent_rep_size, name="latent_input", activation="relu")(z)
        h = layers.RepeatVector(max_length, name="repeat_vector")(h)
        h = layers.GRU(8, return_sequences=True, name="gru_1")(h)
        h = layers.GRU(8, return_sequences=True, name="gru_2")(h)
        h = layers.GRU(8, return_sequences=True, name="gru_3")(h)
        return layers.TimeDistributed(
            layers.Dense(charset_length, activation="softmax"), name="decoded_mean"
        )(h)

    x1 = Input(shape=(max_length, charset_length))
    z1 = _buildEncoder(x1)
    return Model(x1, _buildDecoder(z1))


#: The user code a saved corpus model needs to load: its custom layer classes
#: and the named functions its ``Lambda`` layers call, by the names Keras saves
#: them under (pass as ``custom_objects``). Keras 3 saves ``keras.ops``
#: functions (DeepSpeech's ``Lambda(keras.ops.expand_dims)``) as
#: ``builtins.<name>``, which it cannot load back without them. ``Lambda``
#: bodies that are Python lambdas
#: also need the globals they read (``keras``, ``tf``): Keras 3 gives a
#: deserialized lambda only ``keras.src.utils.python_utils``'s globals.
#: DeepJ's and the molecule VAE's ``Lambda`` functions are named closures,
#: which Keras 3 saves by name only: no ``custom_objects`` can restore them.
CUSTOM_OBJECTS: dict[str, Any] = {
    "MyPoolingMask": MyPoolingMask,
    "SeqSelfAttention": SeqSelfAttention,
    "_transform": _transform,
    "expand_dims": keras.ops.expand_dims,
    "squeeze": keras.ops.squeeze,
}


# --------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------


def _entry(name, source, build, variant="", notes=(), **kw) -> CorpusEntry:
    return CorpusEntry(
        name=name, source=source, build=build, variant=variant, notes=tuple(notes), **kw
    )


def _per_class(fn, cls):
    """A zero-argument builder for ``fn(cls)`` (named, so reprs say which)."""

    def build():
        return fn(cls)

    build.__name__ = f"{fn.__name__.lstrip('_')}_{cls.__name__}"
    build.__qualname__ = build.__name__
    return build


def _bidir_seq(cls, return_sequences):
    def build():
        return _bidirectional_sequential(cls, return_sequences)

    return build


def _bidir_fun(cls, return_sequences, merge_mode):
    def build():
        return _bidirectional_functional(cls, return_sequences, merge_mode)

    return build


def _unit_entries() -> list[CorpusEntry]:
    u = UNIT
    e = [
        _entry(
            "simple_rnn_sequences",
            f"{u}::test_simpleRNN",
            simple_rnn_sequences,
            "model 1: SimpleRNN(2, return_sequences=True)",
        ),
        _entry(
            "simple_rnn_initial_state",
            f"{u}::test_simpleRNN",
            simple_rnn_initial_state,
            "model 2: relu SimpleRNN from a state input, Dense sigmoid",
            ("multi-input", "initial-state"),
        ),
        _entry(
            "simple_rnn_initial_state_return_state",
            f"{u}::test_simpleRNN",
            simple_rnn_initial_state_return_state,
            "model 3: state in, sequence and final state out",
            ("multi-input", "multi-output", "initial-state"),
        ),
        _entry("gru_no_initial_state", f"{u}::test_GRU", gru_no_initial_state, "model 1: GRU(2)"),
        _entry(
            "gru_initial_state_sequences",
            f"{u}::test_GRU",
            gru_initial_state_sequences,
            "model 2, return_sequences=True",
            ("multi-input", "initial-state"),
        ),
        _entry(
            "gru_initial_state_last",
            f"{u}::test_GRU",
            gru_initial_state_last,
            "model 2, return_sequences=False",
            ("multi-input", "initial-state"),
        ),
        _entry(
            "gru_reset_after_sequential",
            f"{u}::test_GRU_2",
            gru_reset_after_sequential,
            "Sequential(name='TestGRU'), input_shape=(1, F)",
        ),
        _entry(
            "lstm_return_state_last_no_bias",
            f"{u}::test_LSTM",
            lstm_return_state_last_no_bias,
            "return_sequences=False, use_bias=False (of 4: the sweep's ends)",
            ("multi-output",),
        ),
        _entry(
            "lstm_return_state_sequences_bias",
            f"{u}::test_LSTM",
            lstm_return_state_sequences_bias,
            "return_sequences=True, use_bias=True",
            ("multi-output",),
            h5=True,
        ),
        _entry(
            "lstm_go_backwards_last_bias",
            f"{u}::test_LSTM_rev",
            lstm_go_backwards_last_bias,
            "return_sequences=False, use_bias=True (of 4)",
            ("multi-output",),
        ),
        _entry(
            "lstm_go_backwards_sequences_no_bias",
            f"{u}::test_LSTM_rev",
            lstm_go_backwards_sequences_no_bias,
            "return_sequences=True, use_bias=False",
            ("multi-output",),
        ),
        _entry(
            "lstm_with_bias_fixed_weights",
            f"{u}::test_LSTM_with_bias",
            lstm_with_bias_fixed_weights,
            "LSTM(1) and RNN(LSTMCell(1)), weights 1..8 set by hand",
            ("multi-output", "fixed-weights"),
            fit=False,
        ),
        _entry(
            "lstm_reshape",
            f"{u}::test_LSTM_reshape",
            lstm_reshape,
            "LSTM and RNN(LSTMCell) sequences through Reshape",
            ("multi-output",),
        ),
        _entry(
            "lstm_with_initializer",
            f"{u}::test_LSTM_with_initializer",
            lstm_with_initializer,
            "relu LSTM and RNN(LSTMCell) from state_h/state_c inputs",
            ("multi-input", "multi-output", "initial-state"),
        ),
        _entry(
            "lstm_stateful_sequences",
            f"{u}::test_LSTM_seqlen_none",
            lstm_stateful_sequences,
            "return_sequences=True, batch_shape=(1, None, 1)",
            ("stateful", "multi-output"),
        ),
        _entry(
            "lstm_stateful_last",
            f"{u}::test_LSTM_seqlen_none",
            lstm_stateful_last,
            "return_sequences=False",
            ("stateful", "multi-output"),
        ),
        _entry(
            "lstm_time_major_h5",
            f"{u}::test_LSTM_time_major_return_seq_true"
            " (+ _false, test_bidirectional_time_major_true)",
            lstm_time_major,
            "Lambda transposes; time_major: true written into the .h5",
            ("lambda", "multi-output", "h5-only"),
            fit=False,
            h5=True,
            h5_patch=patch_time_major,
        ),
    ]
    L, G, S = layers.LSTM, layers.GRU, layers.SimpleRNN
    e += [
        _entry(
            "bidirectional_sequential_lstm_sequences",
            f"{u}::test_bidirectional",
            _bidir_seq(L, True),
            "Sequential, LSTM, return_sequences=True, Dense, softmax",
            h5=True,
        ),
        _entry(
            "bidirectional_sequential_gru_last",
            f"{u}::test_bidirectional",
            _bidir_seq(G, False),
            "Sequential, GRU, return_sequences=False",
        ),
        _entry(
            "bidirectional_sequential_simplernn_sequences",
            f"{u}::test_bidirectional",
            _bidir_seq(S, True),
            "Sequential, SimpleRNN, return_sequences=True",
        ),
        _entry(
            "bidirectional_concat_lstm_last",
            f"{u}::test_bidirectional",
            _bidir_fun(L, False, "concat"),
            "functional, merge_mode='concat', LSTM, last",
        ),
        _entry(
            "bidirectional_merge_none_lstm_last",
            f"{u}::test_bidirectional",
            _bidir_fun(L, False, None),
            "functional, merge_mode=None (two outputs), LSTM",
            ("multi-output",),
        ),
        _entry(
            "bidirectional_merge_none_gru_sequences",
            f"{u}::test_bidirectional",
            _bidir_fun(G, True, None),
            "functional, merge_mode=None, GRU, sequences",
            ("multi-output",),
        ),
    ]
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"bidirectional_with_bias_{key}",
                f"{u}::test_bidirectional_with_bias",
                _per_class(_bidirectional_with_bias, cls),
                f"{cls.__name__}, random biases set by hand (the test's second half)",
            )
        )
    for key, cls in (("lstm", L), ("gru", G)):
        e.append(
            _entry(
                f"bidirectional_return_state_{key}",
                f"{u}::test_bidirectional_with_initial_states",
                _per_class(_bidirectional_return_state, cls),
                f"model 1: Bidirectional({cls.__name__}, return_state=True), all outputs",
                ("multi-output",),
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"bidirectional_initial_states_{key}",
                f"{u}::test_bidirectional_with_initial_states",
                _per_class(_bidirectional_initial_states, cls),
                f"model 2: {cls.__name__} states of input 1 start a Bidirectional over input 2",
                ("multi-input", "seq2seq"),
            )
        )
    for key, cls in (("lstm", L), ("gru", G)):
        e.append(
            _entry(
                f"bidirectional_embedding_{key}",
                f"{u}::test_bidirectional_seqlen_none",
                _per_class(_bidirectional_seqlen_none, cls),
                f"unbuilt Sequential: Embedding(39), Bidirectional({cls.__name__}), Dense(44)",
                ("unbuilt", "token-ids", "float-ids"),
                call_shape=(10,),
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"rnn_state_passing_{key}",
                f"{u}::test_rnn_state_passing",
                _per_class(_rnn_state_passing, cls),
                f"{cls.__name__} states of input 1 start a {cls.__name__} over input 2",
                ("multi-input", "seq2seq"),
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"seq_dynamic_batch_size_{key}",
                f"{u}::test_seq_dynamic_batch_size",
                _per_class(_seq_dynamic_batch_size, cls),
                f"three stacked {cls.__name__}(unroll=True), input_shape on every layer",
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"masking_{key}",
                f"{u}::test_masking",
                _per_class(_masking, cls),
                f"Sequential Masking(0) -> {cls.__name__}(8)",
                ("masked",),
                h5=(key == "lstm"),
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"masking_bias_{key}",
                f"{u}::test_masking_bias",
                _per_class(_masking_bias, cls),
                f"Masking(0) -> {cls.__name__}(8), random bias",
                ("masked",),
            )
        )
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"masking_bias_bidirectional_{key}",
                f"{u}::test_masking_bias_bidirectional",
                _per_class(_masking_bias_bidirectional, cls),
                f"Masking(0) -> Bidirectional({cls.__name__}(8)), random bias",
                ("masked",),
            )
        )
    for key, cls in (("gru", G), ("lstm", L)):
        e.append(
            _entry(
                f"masking_value_{key}",
                f"{u}::test_masking_value",
                _per_class(_masking_value, cls),
                f"Masking(5.0) -> {cls.__name__}(8) (SimpleRNN is skipped by the test)",
                ("masked",),
            )
        )
    e += [
        _entry(
            "masking_custom",
            f"{u}::test_masking_custom",
            masking_custom,
            "Masking(0) -> custom MyPoolingMask (masked mean; no recurrent layer)",
            ("masked", "custom-layer"),
        ),
        _entry(
            "timedistributed_dense",
            f"{u}::test_timedistributed",
            timedistributed_dense,
            "model 1: Sequential TimeDistributed(Dense) (no recurrent layer)",
            ("time-distributed",),
        ),
    ]
    return e


def _app_entries() -> list[CorpusEntry]:
    a = APPS
    e = []
    for key, cls in RNN_CLASSES.items():
        e.append(
            _entry(
                f"addition_rnn_{key}",
                f"{a}/test_nlp.py::test_addition_rnn",
                _per_class(_addition_rnn, cls),
                f"{cls.__name__} encoder, RepeatVector, {cls.__name__} decoder,"
                " TimeDistributed softmax",
                ("time-distributed",),
                h5=(key == "lstm"),
            )
        )
    e += [
        _entry(
            "babi_rnn",
            f"{a}/test_nlp.py::test_babi_rnn",
            babi_rnn,
            "story and question (int32 ids, different lengths), two LSTMs, concatenate",
            ("multi-input", "token-ids"),
        ),
        _entry(
            "imdb_bidirectional_lstm",
            f"{a}/test_nlp.py::test_imdb_bidirectional_lstm",
            imdb_bidirectional_lstm,
            "Sequential without input shape (Embedding input_length)",
            ("unbuilt", "token-ids", "float-ids"),
            call_shape=(12,),
        ),
        _entry(
            "imdb_cnn_lstm",
            f"{a}/test_nlp.py::test_imdb_cnn_lstm",
            imdb_cnn_lstm,
            "Sequential: Embedding, Conv1D, MaxPooling1D, LSTM",
            ("unbuilt", "token-ids", "float-ids"),
            call_shape=(12,),
        ),
        _entry(
            "imdb_lstm",
            f"{a}/test_nlp.py::test_imdb_lstm",
            imdb_lstm,
            "Sequential: Embedding, LSTM(dropout, recurrent_dropout)",
            ("unbuilt", "token-ids", "float-ids"),
            call_shape=(12,),
            h5=True,
        ),
        _entry(
            "lstm_text_generation",
            f"{a}/test_nlp.py::test_lstm_text_generation",
            lstm_text_generation,
            "Sequential LSTM(input_shape=...), softmax",
        ),
        _entry(
            "mlstm_fcn",
            f"{a}/test_mlstm_fcn.py::test_MLSTM_FCN",
            mlstm_fcn,
            "Masking->LSTM branch concatenated with a Conv1D branch over the raw input",
            ("masked",),
        ),
        _entry(
            "lstm_fcn_masked",
            f"{a}/test_mlstm_fcn.py::test_LSTM_FCN",
            lstm_fcn_masked,
            "as mlstm_fcn without squeeze-excite",
            ("masked",),
        ),
        _entry(
            "lstm_fcn",
            f"{a}/test_keras_applications.py::test_lstm_fcn",
            lstm_fcn,
            "LSTM over a single step, Conv1D branch (no Masking)",
        ),
        _entry(
            "keras_self_attention",
            f"{a}/test_keras_applications.py::test_keras_self_attention",
            keras_self_attention,
            "unbuilt Sequential: Embedding(mask_zero), BiLSTM, SeqSelfAttention, Dense",
            ("unbuilt", "token-ids", "float-ids", "masked", "custom-layer"),
            call_shape=(10,),
        ),
        _entry(
            "chatbot",
            f"{a}/test_chatbot.py::test_chatbot",
            chatbot,
            "masked BiLSTM encoder -> LSTM decoder (initial_state), Flatten/RepeatVector attention "
            "multiplied into the decoder: encoder and decoder tied to one time axis",
            ("multi-input", "token-ids", "float-ids", "masked", "seq2seq"),
        ),
        _entry(
            "deep_speech",
            f"{a}/test_deep_speech.py::test_deep_speech",
            deep_speech,
            "Lambda(keras.ops.expand_dims/squeeze), Conv2D over time, BiLSTM merge_mode='sum'",
            ("lambda", "time-distributed"),
        ),
        _entry(
            "deep_speech_2",
            f"{a}/test_deep_speech.py::test_deep_speech_2",
            deep_speech_2,
            "Lambda(expand_dims), strided Conv2D, Reshape([-1, F]), 5 BiGRUs",
            ("lambda", "time-distributed"),
        ),
        _entry(
            "lipnet",
            f"{a}/test_lipnet.py::test_LipNet",
            lipnet,
            "Conv3D/MaxPooling3D, TimeDistributed(Flatten), two BiGRUs",
            ("time-distributed",),
        ),
        _entry(
            "music_generation_model",
            f"{a}/test_music_generation.py::test_music_generation",
            music_generation_model,
            "DeepJ training model: 4 inputs, Lambdas of named closures,"
            " TimeDistributed(LSTM) over notes and time",
            ("lambda", "multi-input", "time-distributed"),
        ),
        _entry(
            "music_generation_time_model",
            f"{a}/test_music_generation.py::test_music_generation",
            music_generation_time_model,
            "DeepJ time-axis model: 3 inputs",
            ("lambda", "multi-input", "time-distributed"),
        ),
        _entry(
            "music_generation_note_model",
            f"{a}/test_music_generation.py::test_music_generation",
            music_generation_note_model,
            "DeepJ note-axis model (one time step): 3 inputs",
            ("lambda", "multi-input", "time-distributed"),
        ),
        _entry(
            "name_entity_recognition",
            f"{a}/test_name_entity_recognition.py::test_name_entity_recognition",
            name_entity_recognition,
            "word/casing ids, chars through TimeDistributed(Embedding, Conv1D, ...), BiLSTM tagger",
            ("multi-input", "token-ids", "time-distributed"),
        ),
        _entry(
            "crnn_lstm",
            f"{a}/test_crnn.py::test_CRNN_LSTM",
            _per_class(_crnn, layers.LSTM),
            "conv stack, Reshape, LSTM + go_backwards LSTM re-reversed by Lambda(flip)",
            ("lambda",),
            h5=True,
        ),
        _entry(
            "crnn_lstm_output_shape",
            f"{a}/test_crnn.py::test_CRNN_LSTM",
            _crnn_lstm_output_shape,
            "as crnn_lstm, its Lambdas given output_shape="
            " (as Keras' load error for crnn_lstm asks)",
            ("lambda",),
        ),
        _entry(
            "crnn_gru",
            f"{a}/test_crnn.py::test_CRNN_GRU",
            _per_class(_crnn, layers.GRU),
            "as crnn_lstm with GRUs",
            ("lambda",),
        ),
        _entry(
            "keras_ocr",
            f"{a}/test_ocr.py::test_OCR",
            keras_ocr,
            "spatial transformer Lambda (tf ops, output_shape=) over a nested Model, LSTM pairs, "
            "Lambda slicing",
            ("lambda",),
        ),
        _entry(
            "resume_cnn_lstm",
            f"{a}/test_resume_parser.py::test_CNN_LSTM",
            resume_cnn_lstm,
            "Sequential: Embedding(input_length), SpatialDropout1D, Conv1D, MaxPooling1D, LSTM",
            ("unbuilt", "token-ids", "float-ids"),
            call_shape=(12,),
        ),
        _entry(
            "resume_bidirectional_lstm",
            f"{a}/test_resume_parser.py::test_Bidirectional_LSTM",
            resume_bidirectional_lstm,
            "Sequential: Embedding, SpatialDropout1D, BiLSTM(dropouts)",
            ("unbuilt", "token-ids", "float-ids"),
            call_shape=(12,),
        ),
        _entry(
            "molecule_vae",
            f"{a}/test_autoencoder.py::test_autoencoder",
            molecule_vae,
            "Conv1D encoder, sampling Lambda (random at inference), three GRUs",
            ("lambda", "stochastic", "time-distributed"),
        ),
    ]
    return e


ENTRIES: tuple[CorpusEntry, ...] = tuple(_unit_entries() + _app_entries())
_BY_NAME = {entry.name: entry for entry in ENTRIES}
assert len(_BY_NAME) == len(ENTRIES), "corpus entry names must be unique"


def names() -> list[str]:
    """Every entry's name, in registry order."""
    return [entry.name for entry in ENTRIES]


def get(name: str) -> CorpusEntry:
    """The entry called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no corpus entry {name!r}; known: {', '.join(names())}") from None


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def _embedding_vocab(layer) -> int | None:
    """The vocabulary of ``layer`` when it reads token ids (an Embedding, or a
    TimeDistributed one), else None."""
    if isinstance(layer, layers.TimeDistributed):
        layer = layer.layer
    if isinstance(layer, layers.Embedding):
        return int(layer.input_dim)
    return None


def _input_vocabularies(model: keras.Model) -> list[int | None]:
    """Per model input, the vocabulary of the Embedding that reads it directly, else None."""
    if isinstance(model, keras.Sequential):
        first = model.layers[0] if model.layers else None
        return [_embedding_vocab(first) if first is not None else None]
    vocabs: list[int | None] = []
    for tensor in model.inputs:
        vocab = None
        for layer in model.layers:
            for node in getattr(layer, "_inbound_nodes", []):
                if any(t is tensor for t in node.input_tensors):
                    vocab = vocab or _embedding_vocab(layer)
        vocabs.append(vocab)
    return vocabs


def _input_shapes(model: keras.Model, call_shape) -> list[tuple]:
    if model.built and getattr(model, "inputs", None):
        return [tuple(t.shape) for t in model.inputs]
    if call_shape is None:
        raise ValueError("an unbuilt model needs call_shape")
    return [(None, *call_shape)]


def sample_inputs(
    model: keras.Model,
    rng: np.random.Generator,
    batch: int = 4,
    time: int = 6,
    call_shape: Sequence[int | None] | None = None,
) -> list[np.ndarray]:
    """Random inputs for ``model``: token ids below the vocabulary for an input
    read by an ``Embedding``, standard normal floats otherwise. A fixed batch
    size (stateful models) wins over ``batch``; a ``None`` axis other than the
    batch gets ``time``. An unbuilt ``Sequential`` needs ``call_shape``."""
    arrays = []
    shapes = _input_shapes(model, call_shape)
    vocabs = _input_vocabularies(model)
    dtypes = [getattr(t, "dtype", "float32") for t in getattr(model, "inputs", None) or [None]]
    for shape, vocab, dtype in zip(shapes, vocabs, dtypes, strict=True):
        dims = [shape[0] if shape[0] is not None else batch]
        dims += [time if d is None else int(d) for d in shape[1:]]
        if vocab is not None:
            # ids 1.. (0 is padding where the Embedding masks it)
            ids = rng.integers(1, vocab, size=dims)
            arrays.append(ids.astype("int32" if "int" in str(dtype) else "float32"))
        else:
            arrays.append(rng.standard_normal(dims).astype("float32"))
    return arrays


def build_and_call(
    entry: CorpusEntry, rng: np.random.Generator | None = None, batch: int = 4, time: int = 6
) -> tuple[keras.Model, list[np.ndarray]]:
    """Build ``entry``'s model and call it once on random inputs (which builds an
    unbuilt ``Sequential``); returns the model and the inputs used."""
    rng = rng if rng is not None else np.random.default_rng(0)
    model = entry.build()
    x = sample_inputs(model, rng, batch=batch, time=time, call_shape=entry.call_shape)
    model.predict(x if len(x) > 1 else x[0], verbose=0, batch_size=len(x[0]))
    return model, x


if __name__ == "__main__":
    for number, item in enumerate(ENTRIES, 1):
        print(
            f"{number:3d} {item.name:45s} {item.source.rsplit('/', 1)[-1]:55s}"
            f" {','.join(item.notes)}"
        )
