"""The commands of ``parity``, one module each, loaded only when it runs.

``COMMANDS`` maps each command's name to the line ``parity --help`` shows for
it, so that listing the commands imports none of them (TensorFlow, tf2onnx
and onnx stay unloaded until a command that needs them runs). Each module
exposes ``command``, a click command whose ``short_help`` is its line here.
"""

from __future__ import annotations

import importlib

import click

COMMANDS = {
    "zoo": "List the model zoo: entries, presets, one line each.",
    "train": "Train a zoo model on its synthetic data and save it.",
    "export": "Export a saved Keras model to a bundle of ONNX graphs.",
    "verify": "Check a bundle against TensorFlow or its golden data.",
    "generate": "Generate from a seq2seq bundle with ONNX Runtime alone.",
    "bench": "Time ONNX Runtime against TensorFlow's fastest modes on the zoo.",
    "coverage": "Export and verify the support matrix (COVERAGE.md).",
    "demo": "Train, export and verify the tiny zoo; print one table.",
}


def load(name: str) -> click.Command:
    """The click command ``name`` (a key of :data:`COMMANDS`), its module imported now."""
    return importlib.import_module(f"{__name__}.{name}").command
