"""Seq2seq training models built the common ways, none of them in the zoo.

Each takes (encoder input, decoder input) with teacher forcing. Weights are
Keras' random initial ones: the split must reproduce the training model
whatever the weights, so no training is needed. ``MISFITS`` are models that do
not fit the split, with a phrase the refusal must contain.
"""

from __future__ import annotations

import keras
from keras import layers


def gru_stack() -> keras.Model:
    """Stacked GRUs, 2 + 2, each decoder layer starting from the state of the
    encoder layer at the same depth; 4 encoder features, 3 decoder features
    (so a generation starts from zeros)."""
    encoder_input = keras.Input((None, 4), name="history")
    x, h1 = layers.GRU(12, return_sequences=True, return_state=True, name="enc_gru_1")(
        encoder_input
    )
    _, h2 = layers.GRU(10, return_state=True, name="enc_gru_2")(x)
    decoder_input = keras.Input((None, 3), name="previous")
    y = layers.GRU(12, return_sequences=True, name="dec_gru_1")(decoder_input, initial_state=h1)
    y = layers.GRU(10, return_sequences=True, name="dec_gru_2")(y, initial_state=[h2])
    output = layers.Dense(3, name="next_value")(y)
    return keras.Model([encoder_input, decoder_input], output, name="gru_stack")


def token_lstm(vocab: int = 13) -> keras.Model:
    """Token decoder: Embedding on the decoder's token ids, an LSTM built
    without return_state, a softmax over the vocabulary."""
    encoder_input = keras.Input((None, 6), name="source")
    _, h, c = layers.LSTM(10, return_state=True, name="enc_lstm")(encoder_input)
    decoder_input = keras.Input((None,), dtype="int32", name="target_tokens")
    y = layers.Embedding(vocab, 8, name="target_embedding")(decoder_input)
    y = layers.LSTM(10, return_sequences=True, name="dec_lstm")(y, initial_state=[h, c])
    output = layers.Dense(vocab, activation="softmax", name="token_probs")(y)
    return keras.Model([encoder_input, decoder_input], output, name="token_lstm")


def zeros_below() -> keras.Model:
    """Three decoder LSTMs over one encoder LSTM: the lower two start from
    zeros, the top one from the encoder; Dropout between layers and between
    the per-step layers after them."""
    encoder_input = keras.Input((None, 4), name="observed")
    _, h, c = layers.LSTM(8, return_state=True, name="encoder")(encoder_input)
    decoder_input = keras.Input((None, 4), name="shifted")
    y = layers.LSTM(6, return_sequences=True, name="lower_1")(decoder_input)
    y = layers.Dropout(0.2, name="drop_1")(y)
    y = layers.LSTM(6, return_sequences=True, name="lower_2")(y)
    y, _, _ = layers.LSTM(8, return_sequences=True, return_state=True, name="top")(
        y, initial_state=[h, c]
    )
    y = layers.Dense(16, activation="relu", name="hidden")(y)
    y = layers.Dropout(0.3, name="drop_2")(y)
    output = layers.Dense(4, name="prediction")(y)
    return keras.Model([encoder_input, decoder_input], output, name="zeros_below")


def onehot_simple_rnn(symbols: int = 7) -> keras.Model:
    """One-hot decoder: SimpleRNN whose state comes from the encoder's through
    a Dense bridge, TimeDistributed(Dense) and a Softmax layer."""
    encoder_input = keras.Input((None, 5), name="context")
    _, h = layers.SimpleRNN(9, return_state=True, name="enc_rnn")(encoder_input)
    bridge = layers.Dense(11, activation="tanh", name="bridge")(h)
    decoder_input = keras.Input((None, symbols), name="onehot_in")
    y = layers.SimpleRNN(11, return_sequences=True, name="dec_rnn")(
        decoder_input, initial_state=[bridge]
    )
    y = layers.TimeDistributed(layers.Dense(symbols), name="logits")(y)
    output = layers.Softmax(name="symbol_probs")(y)
    return keras.Model([encoder_input, decoder_input], output, name="onehot_simple_rnn")


def sine_like() -> keras.Model:
    """The zoo's sine forecaster at a tiny size: stacked LSTMs, decoder layer 1
    from the encoder's (h, c), layer 2 from zeros, Dense forecast."""
    encoder_input = keras.Input((None, 5), name="encoder_input")
    x = layers.LSTM(16, return_sequences=True, name="encoder_lstm_1")(encoder_input)
    _, h, c = layers.LSTM(16, return_state=True, name="encoder_lstm_2")(x)
    decoder_input = keras.Input((None, 5), name="decoder_input")
    y, _, _ = layers.LSTM(16, return_sequences=True, return_state=True, name="decoder_lstm_1")(
        decoder_input, initial_state=[h, c]
    )
    y, _, _ = layers.LSTM(16, return_sequences=True, return_state=True, name="decoder_lstm_2")(y)
    output = layers.Dense(5, name="forecast")(y)
    return keras.Model([encoder_input, decoder_input], output, name="sine_like")


def attention_decoder() -> keras.Model:
    encoder_input = keras.Input((None, 4), name="source")
    sequence, h, c = layers.LSTM(8, return_sequences=True, return_state=True, name="enc")(
        encoder_input
    )
    decoder_input = keras.Input((None, 4), name="target")
    y = layers.LSTM(8, return_sequences=True, name="dec")(decoder_input, initial_state=[h, c])
    context = layers.Attention(name="attend")([y, sequence])
    y = layers.Concatenate(name="merge")([y, context])
    output = layers.Dense(4, name="out")(y)
    return keras.Model([encoder_input, decoder_input], output, name="attention_decoder")


FITTING = {
    "gru_stack": gru_stack,
    "token_lstm": token_lstm,
    "zeros_below": zeros_below,
    "onehot_simple_rnn": onehot_simple_rnn,
    "attention_decoder": attention_decoder,
}


# --- models that do not fit ---------------------------------------------------


def bidirectional_decoder() -> keras.Model:
    encoder_input = keras.Input((None, 4), name="source")
    _, h, c = layers.LSTM(8, return_state=True, name="enc")(encoder_input)
    decoder_input = keras.Input((None, 4), name="target")
    y = layers.Bidirectional(layers.LSTM(8, return_sequences=True), name="dec")(
        decoder_input, initial_state=[h, c, h, c]
    )
    output = layers.Dense(4, name="out")(y)
    return keras.Model([encoder_input, decoder_input], output, name="bidirectional_decoder")


def repeated_context() -> keras.Model:
    """No initial_state wiring: the encoder's summary is repeated and
    concatenated to every decoder step instead."""
    encoder_input = keras.Input((None, 4), name="source")
    summary = layers.LSTM(8, name="enc")(encoder_input)
    decoder_input = keras.Input((6, 4), name="target")
    repeated = layers.RepeatVector(6, name="repeat")(summary)
    y = layers.Concatenate(name="merge")([decoder_input, repeated])
    y = layers.LSTM(8, return_sequences=True, name="dec")(y)
    output = layers.Dense(4, name="out")(y)
    return keras.Model([encoder_input, decoder_input], output, name="repeated_context")


def state_from_decoder() -> keras.Model:
    """The upper decoder layer starts from the lower one's final state, which
    depends on the decoder input: no encoder computes it."""
    encoder_input = keras.Input((None, 4), name="source")
    _, h, c = layers.LSTM(8, return_state=True, name="enc")(encoder_input)
    decoder_input = keras.Input((None, 4), name="target")
    y, h1, c1 = layers.LSTM(8, return_sequences=True, return_state=True, name="dec_1")(
        decoder_input, initial_state=[h, c]
    )
    y = layers.LSTM(8, return_sequences=True, name="dec_2")(y, initial_state=[h1, c1])
    output = layers.Dense(4, name="out")(y)
    return keras.Model([encoder_input, decoder_input], output, name="state_from_decoder")


def last_step_decoder() -> keras.Model:
    encoder_input = keras.Input((None, 4), name="source")
    _, h, c = layers.LSTM(8, return_state=True, name="enc")(encoder_input)
    decoder_input = keras.Input((None, 4), name="target")
    y = layers.LSTM(8, name="dec")(decoder_input, initial_state=[h, c])
    output = layers.Dense(4, name="out")(y)
    return keras.Model([encoder_input, decoder_input], output, name="last_step_decoder")


def classifier() -> keras.Model:
    sequence = keras.Input((None, 4), name="sequence")
    y = layers.LSTM(8, name="lstm")(sequence)
    return keras.Model(sequence, layers.Dense(3, name="probs")(y), name="classifier")


# name -> (builder, a phrase of the refusal)
MISFITS = {
    "bidirectional_decoder": (bidirectional_decoder, "is Bidirectional"),
    "repeated_context": (repeated_context, "combines 2 tensors"),
    "state_from_decoder": (state_from_decoder, "depends on the decoder input"),
    "last_step_decoder": (last_step_decoder, "return_sequences=False"),
    "classifier": (classifier, "found 1 input(s)"),
}
