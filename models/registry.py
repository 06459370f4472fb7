"""The zoo's table of entries, and the plain data that describes them.

An entry is a builder, a deterministic synthetic data generator and a table of
presets. Everything here is plain data and numpy: listing the zoo (``parity
zoo``) must not import TensorFlow, so each builder imports Keras itself and
the entry modules are imported only when the table is first read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from parity.runtime.errors import ParityError

if TYPE_CHECKING:
    import keras

# The order in which the zoo is listed; each name is a module of this package.
_NAMES = ("conv_rows_lstm", "td_cnn_lstm", "masked_lstm", "seq_tagger", "sine_seq2seq")

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Preset:
    """The sizes of one configuration of an entry and how long to train it.

    ``dims`` holds what the builder and the data generator read (units, steps,
    classes, horizon, ...); it is a flat table so that it can be listed.
    """

    name: str
    dims: Mapping[str, int | float]
    epochs: int
    train_size: int
    test_size: int
    batch_size: int
    learning_rate: float = 1e-3


@dataclass(frozen=True)
class Dataset:
    """Synthetic examples: ``inputs`` is keyed by the Keras Input names, and
    ``lengths`` holds each row's valid length where rows are padded."""

    inputs: Mapping[str, np.ndarray]
    targets: np.ndarray
    lengths: np.ndarray | None = None


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo. ``builder`` returns an uncompiled model; ``build``
    compiles it for the entry's task, so that every entry trains the same way."""

    name: str
    description: str
    task: str
    presets: Mapping[str, Preset]
    builder: Callable[[Preset], keras.Model]
    generator: Callable[[Preset, int, np.random.Generator], Dataset]

    def preset(self, preset_name: str) -> Preset:
        if preset_name not in self.presets:
            raise ParityError(
                f"{self.name}: unknown preset {preset_name!r} (choose from: "
                f"{', '.join(self.presets)})"
            )
        return self.presets[preset_name]

    def build(self, preset_name: str = "tiny") -> keras.Model:
        import keras

        preset = self.preset(preset_name)
        model = self.builder(preset)
        if self.task == CLASSIFICATION:
            loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        else:
            loss, metrics = "mean_squared_error", []
        model.compile(
            optimizer=keras.optimizers.Adam(preset.learning_rate), loss=loss, metrics=metrics
        )
        return model

    def make_data(self, preset_name: str, n: int, seed: int) -> Dataset:
        """``n`` examples; the same ``seed`` gives the same arrays."""
        return self.generator(self.preset(preset_name), n, np.random.default_rng(seed))


def names() -> list[str]:
    return list(_NAMES)


def get(name: str) -> ZooEntry:
    if name not in _NAMES:
        raise ParityError(f"unknown zoo model {name!r} (choose from: {', '.join(_NAMES)})")
    return importlib.import_module(f"parity.models.{name}").ENTRY
