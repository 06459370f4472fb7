"""``masked_lstm``: variable-length sequences, post-padded with zeros, to one of
13 classes (the second seed: ``pad_sequences(..., padding='post')``,
``Masking(mask_value=0)``, ``LSTM(128)``, ``Dense(13, softmax)``).

Data: every class has a pattern of signs over the features. Each valid step
shows its class's pattern with some signs flipped, and the label is the class
whose pattern best matches the signs summed over the valid steps
(:func:`label_of`), so the label is a function of the valid part alone. Valid
values are drawn away from zero, so no valid step is ever mistaken for
padding; rows have every length from 1 to the full number of steps.
"""

from __future__ import annotations

import numpy as np

from parity.models.registry import CLASSIFICATION, Dataset, Preset, ZooEntry

PRESETS = {
    "tiny": Preset(
        "tiny",
        dict(steps=20, features=8, units=16, classes=13, dropout=0.0),
        epochs=15,
        train_size=768,
        test_size=256,
        batch_size=32,
        learning_rate=1e-2,
    ),
    # LSTM(128, dropout_W=0.5, dropout_U=0.5) on 100 x 20, batch_size=10, 1920 rows.
    "seed": Preset(
        "seed",
        dict(steps=100, features=20, units=128, classes=13, dropout=0.5),
        epochs=10,
        train_size=1920,
        test_size=480,
        batch_size=10,
    ),
}

# Chance that a valid step shows the opposite sign of its class's pattern.
_FLIP = 0.25


def build(preset: Preset):
    import keras
    from keras import layers

    d = preset.dims
    sequence = keras.Input((d["steps"], d["features"]), name="sequence")
    x = layers.Masking(mask_value=0.0)(sequence)
    x = layers.LSTM(d["units"], dropout=d["dropout"], recurrent_dropout=d["dropout"])(x)
    probs = layers.Dense(d["classes"], activation="softmax", name="probs")(x)
    return keras.Model(sequence, probs, name="masked_lstm")


def sign_patterns(preset: Preset) -> np.ndarray:
    """One distinct +-1 pattern per class, (classes, features); fixed per preset,
    not per seed, so that training and held-out data share them."""
    classes, features = preset.dims["classes"], preset.dims["features"]
    codes = np.random.default_rng(features).choice(2**features, classes, replace=False)
    bits = (codes[:, None] >> np.arange(features)) & 1
    return (2 * bits - 1).astype(np.float32)


def label_of(valid_steps: np.ndarray, patterns: np.ndarray) -> int:
    """The class of one row, from its valid steps (length, features) only."""
    return int(np.argmax(patterns @ np.sign(valid_steps).sum(axis=0)))


def make_data(preset: Preset, n: int, rng: np.random.Generator) -> Dataset:
    d = preset.dims
    steps, features = d["steps"], d["features"]
    patterns = sign_patterns(preset)
    lengths = rng.integers(1, steps + 1, n)
    lengths[:2] = [1, steps][:n]  # both extremes, whenever there are two rows
    lengths = rng.permutation(lengths)
    drawn = rng.integers(0, len(patterns), n)
    flips = np.where(rng.random((n, steps, features)) < _FLIP, -1.0, 1.0)
    magnitude = rng.uniform(0.25, 1.0, (n, steps, features))
    values = patterns[drawn][:, None, :] * flips * magnitude
    values[np.arange(steps) >= lengths[:, None]] = 0.0
    labels = [label_of(values[row, :length], patterns) for row, length in enumerate(lengths)]
    return Dataset(
        {"sequence": values.astype(np.float32)},
        np.array(labels, np.int32),
        lengths.astype(np.int32),
    )


ENTRY = ZooEntry(
    name="masked_lstm",
    description="Variable-length sequences post-padded with zeros: Masking, LSTM, Dense softmax "
    "over 13 classes.",
    task=CLASSIFICATION,
    presets=PRESETS,
    builder=build,
    generator=make_data,
)
