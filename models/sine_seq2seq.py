"""``sine_seq2seq``: the first seed's forecaster of sine waves.

Training model, built the common way (teacher forcing): the encoder is a
stack of LSTMs whose last layer returns its state ``(h, c)``; the decoder is a
stack of LSTMs plus ``Dense`` named ``forecast``. Decoder layer 1 starts from
the encoder's final state, the others from zeros, as in the seed. The decoder
reads the last observed point followed by the targets shifted by one step, so
its weights are exactly those of a one-step decoder that feeds its own output
back; generation with those weights is free-running.

Layers are named ``encoder_lstm_<i>`` and ``decoder_lstm_<i>`` (from 1), so
that the model can be split into an encoder and a one-step decoder.

Data follows the seed's ``make_data``: every feature is a sine with its own
random wavelength and phase; the last ``horizon`` steps are the targets.
"""

from __future__ import annotations

import numpy as np

from parity.models.registry import REGRESSION, Dataset, Preset, ZooEntry

PRESETS = {
    "tiny": Preset(
        "tiny",
        dict(
            features=5,
            units=16,
            encoder_layers=2,
            decoder_layers=2,
            horizon=10,
            encoder_min_steps=16,
            encoder_max_steps=31,
        ),
        epochs=15,
        train_size=512,
        test_size=256,
        batch_size=32,
        learning_rate=1e-2,
    ),
    # features_num=5, latent_dim=40, 4 + 4 LSTMs, 150 generated steps, and
    # sequences of randint(150, 300) + 150 steps of which the last 150 are targets.
    "seed": Preset(
        "seed",
        dict(
            features=5,
            units=40,
            encoder_layers=4,
            decoder_layers=4,
            horizon=150,
            encoder_min_steps=150,
            encoder_max_steps=299,
        ),
        epochs=20,
        train_size=3000,
        test_size=470,
        batch_size=100,
    ),
}


def build(preset: Preset):
    import keras
    from keras import layers

    d = preset.dims
    units, features = d["units"], d["features"]
    encoder_input = keras.Input((None, features), name="encoder_input")
    x = encoder_input
    for i in range(1, d["encoder_layers"]):
        x = layers.LSTM(units, return_sequences=True, name=f"encoder_lstm_{i}")(x)
    last = d["encoder_layers"]
    _, state_h, state_c = layers.LSTM(units, return_state=True, name=f"encoder_lstm_{last}")(x)

    decoder_input = keras.Input((None, features), name="decoder_input")
    y = decoder_input
    for i in range(1, d["decoder_layers"] + 1):
        decoder = layers.LSTM(
            units, return_sequences=True, return_state=True, name=f"decoder_lstm_{i}"
        )
        initial_state = [state_h, state_c] if i == 1 else None
        y, _, _ = decoder(y, initial_state=initial_state)
    forecast = layers.Dense(features, name="forecast")(y)
    return keras.Model([encoder_input, decoder_input], forecast, name="sine_seq2seq")


def make_waves(n: int, steps: int, features: int, rng: np.random.Generator) -> np.ndarray:
    """(n, steps, features) sines, ``sin(t / wavelength + phase)``, wavelength
    in [11, 31) as in the seed. The seed draws the phase from [0, 1) but its
    sequences span several periods; the phase here covers a whole period, so
    that short sequences also start anywhere in the cycle."""
    wavelength = rng.uniform(11.0, 31.0, (n, 1, features))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1, features))
    return np.sin(np.arange(steps)[None, :, None] / wavelength + phase)


def make_data(preset: Preset, n: int, rng: np.random.Generator) -> Dataset:
    d = preset.dims
    horizon = d["horizon"]
    observed = int(rng.integers(d["encoder_min_steps"], d["encoder_max_steps"] + 1))
    waves = make_waves(n, observed + horizon, d["features"], rng).astype(np.float32)
    encoder_input, targets = waves[:, :observed], waves[:, observed:]
    # Teacher forcing: the last observed point, then the targets shifted by one.
    decoder_input = waves[:, observed - 1 : -1]
    return Dataset({"encoder_input": encoder_input, "decoder_input": decoder_input}, targets)


ENTRY = ZooEntry(
    name="sine_seq2seq",
    description="Sine-wave forecaster: stacked LSTM encoder returning (h, c), stacked LSTM "
    "decoder feeding back its own output.",
    task=REGRESSION,
    presets=PRESETS,
    builder=build,
    generator=make_data,
)
