"""Train a zoo entry reproducibly and measure it on held-out data
(:func:`parity.files.save_model` saves it).

TensorFlow is imported only once the arguments are known to be good, so that
a wrong name, preset or path fails at once and in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.models.registry import CLASSIFICATION, Dataset, Preset, get
from parity.runtime.errors import ParityError
from parity.runtime.progress import Progress, silent, time_left

if TYPE_CHECKING:
    import keras

# Held-out data is drawn from its own stream: seed + this offset.
HELD_OUT_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class TrainResult:
    """A trained model and how well it does. ``metrics`` are measured on held-out
    data; ``chance`` is what guessing scores on the same data, in the units of
    ``metrics[metric]`` (accuracy of the most frequent class, or the mean
    squared error of predicting each feature's mean)."""

    model: keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, float]
    metric: str
    chance: float


def train(
    name: str,
    preset: str = "tiny",
    epochs: int | None = None,
    seed: int = 0,
    progress: Progress = silent,
) -> TrainResult:
    """Train ``name`` on its synthetic data. The same seed gives the same data,
    the same initial weights and the same shuffling, hence the same model.

    Args:
        name: the zoo entry.
        preset: its sizes (``tiny`` trains in seconds, ``seed`` in minutes).
        epochs: the epochs to train; the preset's when None.
        seed: the seed of the data, the initial weights and the shuffling.
        progress: hears one line per epoch: its scores and the time left.
    """
    entry = get(name)
    sizes = entry.preset(preset)
    epochs = training_epochs(sizes, epochs)

    import keras

    keras.utils.set_random_seed(seed)
    data = entry.make_data(preset, sizes.train_size, seed)
    held_out = entry.make_data(preset, sizes.test_size, seed + HELD_OUT_SEED_OFFSET)
    model = entry.build(preset)
    history = model.fit(
        _as_model_inputs(model, data),
        data.targets,
        epochs=epochs,
        batch_size=sizes.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[epoch_lines(epochs, progress)],
    )
    metrics = model.evaluate(
        _as_model_inputs(model, held_out),
        held_out.targets,
        batch_size=sizes.batch_size,
        verbose=0,
        return_dict=True,
    )
    metric = "accuracy" if entry.task == CLASSIFICATION else "loss"
    return TrainResult(
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        metrics={k: float(v) for k, v in metrics.items()},
        metric=metric,
        chance=chance_level(entry.task, held_out),
    )


def epoch_lines(epochs: int, progress: Progress) -> keras.callbacks.Callback:
    """The Keras callback that says, after each of ``epochs`` epochs, its
    training scores and how long the rest should take:
    "epoch 3/20: loss 0.412, accuracy 0.85; 1 min 10 s left".

    Args:
        epochs: the epochs of the run.
        progress: hears the lines.
    """
    import keras

    left = time_left(epochs)

    def say(epoch: int, logs: dict[str, float] | None) -> None:
        scores = ", ".join(f"{key} {float(value):.3g}" for key, value in (logs or {}).items())
        progress(f"epoch {epoch + 1}/{epochs}: {scores}{left(epoch + 1)}")

    return keras.callbacks.LambdaCallback(on_epoch_end=say)


def training_epochs(preset: Preset, epochs: int | None) -> int:
    """The epochs to train: the preset's unless given."""
    epochs = preset.epochs if epochs is None else epochs
    if epochs < 1:
        raise ParityError(f"epochs must be at least 1, got {epochs}")
    return epochs


def _as_model_inputs(model: keras.Model, data: Dataset) -> Any:
    """The arrays in the structure the model was built with: Keras warns when
    a one-input model is given a dict."""
    if len(model.inputs) == 1:
        return data.inputs[model.inputs[0].name]
    return dict(data.inputs)


def chance_level(task: str, data: Dataset) -> float:
    targets = np.asarray(data.targets)
    if task == CLASSIFICATION:
        return float(np.bincount(targets.ravel()).max() / targets.size)
    mean = targets.mean(axis=tuple(range(targets.ndim - 1)))
    return float(np.mean((targets - mean) ** 2))
