"""The two sides of a comparison: one graph run by TensorFlow or by ONNX Runtime.

A runner takes named input arrays and returns named output arrays, for one
graph, so that every check can hold any runner against any other: Keras
against ONNX Runtime, ONNX Runtime on the CPU against ONNX Runtime on the GPU,
or a runtime against itself on differently padded inputs.

Importing this module does not import TensorFlow: only selecting a TensorFlow
device or running a Keras model does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from parity.runtime.bundle import Bundle
from parity.runtime.errors import ParameterError, ParityError


class Runner(Protocol):
    """One graph on one runtime: named inputs in, named outputs out."""

    @property
    def name(self) -> str:
        """The runtime, as check names give it: "tensorflow" or "onnxruntime"."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph once.

        Args:
            feeds: one array per input of the graph, by input name.

        Returns:
            One array per output of the graph, by output name.
        """
        ...


@dataclass(frozen=True)
class TensorFlowDevice:
    """Where TensorFlow runs, and with which float32 matmul precision."""

    name: str  # the TensorFlow device string, e.g. "/CPU:0"
    tf32: bool

    @property
    def label(self) -> str:
        return f"tensorflow {self.name}" + (" (tf32)" if self.tf32 else "")


def select_device(device: str, tf32: bool) -> TensorFlowDevice:
    """Pick TensorFlow's device and set its TF32 mode.

    TensorFlow enables TF32 by default on Ampere and later GPUs; a float32
    comparison needs it off unless the caller asks for it.

    Args:
        device: "auto" (the GPU when TensorFlow sees one, else the CPU), "cpu" or "gpu".
        tf32: allow TF32 matmuls on the GPU.

    Raises:
        ParameterError: ``device`` is "gpu" and TensorFlow sees no GPU.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ParameterError("device", "TensorFlow sees no GPU on this machine")
    name = "/GPU:0" if gpus and device in ("auto", "gpu") else "/CPU:0"
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    return TensorFlowDevice(name, tf32 and name != "/CPU:0")


@contextlib.contextmanager
def on_device(device: TensorFlowDevice) -> Iterator[None]:
    """Place the TensorFlow work done inside the block on ``device``.

    Args:
        device: the device from :func:`select_device`.
    """
    import tensorflow as tf

    with tf.device(device.name):
        yield


@dataclass(frozen=True)
class KerasRunner:
    """A Keras model run by TensorFlow, its outputs named as the exporter names them."""

    model: Any
    device: TensorFlowDevice
    name: str = "tensorflow"

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once; see :meth:`Runner.run`."""
        from parity.exporter.keras_io import keras_outputs
        from parity.exporter.user_code import user_code_error

        try:
            with on_device(self.device):
                return keras_outputs(self.model, feeds)
        except ParityError:
            raise
        except Exception as exc:
            reason = user_code_error(exc)
            if reason is None:
                raise
            raise ParityError(f"model {self.model.name!r}: {reason}") from None


@dataclass(frozen=True)
class OnnxRuntimeRunner:
    """One graph of a loaded bundle, run by ONNX Runtime on the device its
    sessions got (``bundle.device``: "cpu" or "gpu")."""

    bundle: Bundle
    graph: str
    name: str = "onnxruntime"

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph once (inputs checked first); see :meth:`Runner.run`."""
        return self.bundle.run(feeds, graph=self.graph)
