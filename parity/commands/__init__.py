"""One module per CLI command, each exposing ``command`` (a click command).

Modules import only click, :mod:`parity.options` and modules that need no
more than numpy and onnx at the top; TensorFlow and tf2onnx are imported
inside the command body, so that ``parity --help`` answers without them.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


def _discover() -> list[click.Command]:
    commands = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        commands.append(module.command)
    return commands


COMMANDS = _discover()
