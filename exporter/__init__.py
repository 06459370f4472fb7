"""Keras to ONNX: bundles that the runtime can load without TensorFlow.

``export_keras(src, out_dir)`` loads a saved model safely and writes a
bundle; ``export_model(model, out_dir)`` does the same for a model in memory.
The names below are loaded when first used, so that importing a light module
of this package (:mod:`parity.exporter.opsets`) does not import onnx or
TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConvertedGraph": "parity.exporter.convert",
    "keras_to_onnx": "parity.exporter.convert",
    "export_keras": "parity.exporter.export",
    "export_model": "parity.exporter.export",
    "load_keras": "parity.exporter.load",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
