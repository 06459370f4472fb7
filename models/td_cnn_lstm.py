"""``td_cnn_lstm``: a sequence of images to one class (the first seed's "Type 2").

The same convolution runs on every frame (``TimeDistributed``), and the LSTM
reads the per-frame features in order.

Data: a bright square moves across the frames, right, left or down; the
direction is the class. A single frame says nothing about it: only the order
of the frames does, which is what the LSTM is for.
"""

from __future__ import annotations

import numpy as np

from parity.models.registry import CLASSIFICATION, Dataset, Preset, ZooEntry

PRESETS = {
    "tiny": Preset(
        "tiny",
        dict(frames=5, height=8, width=8, channels=1, filters=4, units=8, classes=3),
        epochs=10,
        train_size=384,
        test_size=192,
        batch_size=32,
        learning_rate=3e-3,
    ),
    # InputLayer(input_shape=(5, 224, 224, 3)), Conv2D(64, (3, 3)), LSTM(10), Dense(3).
    # The LSTM reads 111 * 111 * 64 features per frame: Adam moves every one of
    # those weights by about the learning rate at each step, and at 1e-3 the sum
    # saturates the gates and nothing is learned; 1e-4 learns (held-out accuracy
    # 0.82 against a chance of 0.43 after 6 epochs, about 8 minutes on 2 cores).
    "seed": Preset(
        "seed",
        dict(frames=5, height=224, width=224, channels=3, filters=64, units=10, classes=3),
        epochs=6,
        train_size=240,
        test_size=60,
        batch_size=8,
        learning_rate=1e-4,
    ),
}

# Direction of motion per class, as (rows, columns) per frame.
_DIRECTIONS = np.array([(0, 1), (0, -1), (1, 0)])


def build(preset: Preset):
    import keras
    from keras import layers

    d = preset.dims
    frames = keras.Input((d["frames"], d["height"], d["width"], d["channels"]), name="frames")
    x = layers.TimeDistributed(layers.Conv2D(d["filters"], 3, activation="relu"))(frames)
    x = layers.TimeDistributed(layers.MaxPooling2D(2, strides=2))(x)
    x = layers.TimeDistributed(layers.Flatten())(x)
    x = layers.LSTM(d["units"])(x)
    probs = layers.Dense(d["classes"], activation="softmax", name="probs")(x)
    return keras.Model(frames, probs, name="td_cnn_lstm")


def make_data(preset: Preset, n: int, rng: np.random.Generator) -> Dataset:
    d = preset.dims
    count, height, width = d["frames"], d["height"], d["width"]
    size = max(2, height // 4)
    speed = max(1, (min(height, width) - size) // count)
    labels = rng.integers(0, len(_DIRECTIONS), n)
    step = _DIRECTIONS[labels] * speed
    # Start where the whole path stays inside the frame.
    travel = step * (count - 1)
    low = np.maximum(0, -travel)
    high = np.array([height, width]) - size - np.maximum(0, travel)
    start = low + (rng.random((n, 2)) * (high - low + 1)).astype(int)
    shape = (n, count, height, width, d["channels"])
    frames = 0.1 * rng.standard_normal(shape, dtype=np.float32)
    for row in range(n):
        for t in range(count):
            top, left = start[row] + step[row] * t
            frames[row, t, top : top + size, left : left + size] += 1.0
    return Dataset({"frames": frames}, labels.astype(np.int32))


ENTRY = ZooEntry(
    name="td_cnn_lstm",
    description="A sequence of images to one class: TimeDistributed(Conv2D, MaxPool, Flatten), "
    "LSTM, Dense.",
    task=CLASSIFICATION,
    presets=PRESETS,
    builder=build,
    generator=make_data,
)
