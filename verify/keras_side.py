"""The TensorFlow side of a verification: running the Keras model.

Imports TensorFlow, so only :func:`verify.check` with a Keras model reaches it;
bundle-only verification never does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.runtime.errors import ParityError


@dataclass(frozen=True)
class TensorFlowDevice:
    """Where TensorFlow runs, and with which float32 matmul precision."""

    name: str  # the TensorFlow device string, e.g. "/CPU:0"
    tf32: bool

    @property
    def label(self) -> str:
        return f"tensorflow {self.name}" + (" (tf32)" if self.tf32 else "")


def select_device(device: str, tf32: bool) -> TensorFlowDevice:
    """Pick TensorFlow's device for ``auto``/``cpu``/``gpu`` and set TF32 accordingly."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ParityError("--device gpu: TensorFlow sees no GPU on this machine")
    name = "/GPU:0" if gpus and device in ("auto", "gpu") else "/CPU:0"
    # TensorFlow enables TF32 by default on Ampere and later; it must be off for
    # a float32 comparison unless the user asks for it.
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    return TensorFlowDevice(name, tf32 and name != "/CPU:0")


@contextlib.contextmanager
def on_device(device: TensorFlowDevice) -> Iterator[None]:
    import tensorflow as tf

    with tf.device(device.name):
        yield


def run_keras(
    model: Any, inputs: Mapping[str, np.ndarray], device: TensorFlowDevice
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``device``, outputs named as the exporter names them."""
    from parity.exporter.keras_io import keras_outputs

    with on_device(device):
        return keras_outputs(model, inputs)
