"""Keras to ONNX: bundles that the runtime can load without TensorFlow.

``export_keras(src, out_dir)`` loads a ``.keras`` file safely and writes a
bundle; ``export_model(model, out_dir)`` does the same for a model in memory.
"""

from parity.exporter.convert import ConvertedGraph, keras_to_onnx
from parity.exporter.export import export_keras, export_model
from parity.exporter.load import load_keras

__all__ = [
    "ConvertedGraph",
    "export_keras",
    "export_model",
    "keras_to_onnx",
    "load_keras",
]
