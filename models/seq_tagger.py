"""``seq_tagger``: many to many, one tag per time step, any number of steps.

``LSTM(return_sequences=True)`` then ``TimeDistributed(Dense(softmax))``: the
common way users write a tagger, and the pattern that tf2onnx silently
mis-converts when the time axis is dynamic, so the zoo keeps it exactly so.

Data: the tag of step ``t`` is the feature that is largest over steps ``t-1``
and ``t`` together, so each tag needs the step before it.
"""

from __future__ import annotations

import numpy as np

from parity.models.registry import CLASSIFICATION, Dataset, Preset, ZooEntry

PRESETS = {
    "tiny": Preset(
        "tiny",
        dict(steps=12, features=4, units=16),
        epochs=12,
        train_size=512,
        test_size=256,
        batch_size=32,
        learning_rate=1e-2,
    ),
    # The first seed's sizes: 5 features, 40 units, 150 steps.
    "seed": Preset(
        "seed",
        dict(steps=150, features=5, units=40),
        epochs=20,
        train_size=2000,
        test_size=500,
        batch_size=32,
    ),
}


def build(preset: Preset):
    import keras
    from keras import layers

    d = preset.dims
    tokens = keras.Input((None, d["features"]), name="tokens")
    x = layers.LSTM(d["units"], return_sequences=True)(tokens)
    tags = layers.TimeDistributed(layers.Dense(d["features"], activation="softmax"), name="tags")(x)
    return keras.Model(tokens, tags, name="seq_tagger")


def tags_of(tokens: np.ndarray) -> np.ndarray:
    """The tags of (batch, steps, features) tokens: (batch, steps) ints."""
    previous = np.concatenate([np.zeros_like(tokens[:, :1]), tokens[:, :-1]], axis=1)
    return np.argmax(tokens + previous, axis=-1).astype(np.int32)


def make_data(preset: Preset, n: int, rng: np.random.Generator) -> Dataset:
    d = preset.dims
    tokens = rng.normal(0.0, 1.0, (n, d["steps"], d["features"])).astype(np.float32)
    return Dataset({"tokens": tokens}, tags_of(tokens))


ENTRY = ZooEntry(
    name="seq_tagger",
    description="Many to many: LSTM(return_sequences) and TimeDistributed(Dense) tag every step "
    "of a sequence of any length.",
    task=CLASSIFICATION,
    presets=PRESETS,
    builder=build,
    generator=make_data,
)
