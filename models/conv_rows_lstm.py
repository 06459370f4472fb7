"""``conv_rows_lstm``: one image to one class, the image rows read as time steps.

The first seed's "Type 1" made to work: its ``Reshape((56*14,))`` gives a flat
vector, which an LSTM cannot read. Here the convolution output keeps its rows
as the time axis, ``Reshape((rows, cols * filters))``, so the LSTM walks down
the image.

Data: each image holds one noisy line whose angle is the class (class ``k`` is
``k * 180 / classes`` degrees), at a random place. Telling the angles apart
needs the local edges that the convolutions find and how they move from row to
row, which the LSTM follows.
"""

from __future__ import annotations

import numpy as np

from parity.models.registry import CLASSIFICATION, Dataset, Preset, ZooEntry

PRESETS = {
    "tiny": Preset(
        "tiny",
        dict(height=12, width=8, filters=4, units=8, hidden=16, classes=4),
        epochs=12,
        train_size=512,
        test_size=256,
        batch_size=32,
        learning_rate=3e-3,
    ),
    # The seed's Theano-ordered input_shape=[1, 56, 14], channels last here.
    "seed": Preset(
        "seed",
        dict(height=56, width=14, filters=32, units=5, hidden=50, classes=10),
        epochs=20,
        train_size=4000,
        test_size=1000,
        batch_size=32,
    ),
}


def build(preset: Preset):
    import keras
    from keras import layers

    d = preset.dims
    images = keras.Input((d["height"], d["width"], 1), name="images")
    x = layers.Conv2D(d["filters"], 3, activation="relu")(images)
    x = layers.Conv2D(d["filters"], 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    rows, cols, filters = x.shape[1:]
    x = layers.Reshape((rows, cols * filters))(x)
    x = layers.Dropout(0.25)(x)
    x = layers.LSTM(d["units"])(x)
    x = layers.Dense(d["hidden"])(x)
    x = layers.Dense(d["classes"])(x)
    probs = layers.Activation("softmax", name="probs")(x)
    return keras.Model(images, probs, name="conv_rows_lstm")


def make_data(preset: Preset, n: int, rng: np.random.Generator) -> Dataset:
    d = preset.dims
    height, width, classes = d["height"], d["width"], d["classes"]
    labels = rng.integers(0, classes, n)
    jitter = rng.uniform(-0.25, 0.25, n) * np.pi / classes
    angle = (labels * np.pi / classes + jitter)[:, None, None]
    centre_y = rng.uniform(0.3, 0.7, n)[:, None, None] * height
    centre_x = rng.uniform(0.3, 0.7, n)[:, None, None] * width
    y, x = np.mgrid[0:height, 0:width]
    # Distance of each pixel from the line through the centre at that angle.
    distance = np.abs((y - centre_y) * np.cos(angle) - (x - centre_x) * np.sin(angle))
    images = np.exp(-(distance**2)) + rng.normal(0.0, 0.1, (n, height, width))
    return Dataset({"images": images[..., None].astype(np.float32)}, labels.astype(np.int32))


ENTRY = ZooEntry(
    name="conv_rows_lstm",
    description="One image to one class: Conv2D, image rows become LSTM time steps, Dense.",
    task=CLASSIFICATION,
    presets=PRESETS,
    builder=build,
    generator=make_data,
)
