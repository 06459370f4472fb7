"""Keeping TensorFlow's and LiteRT's native log lines off the terminal.

TensorFlow's C++ libraries write to file descriptor 2 while they load:
absl's "All log messages before absl::InitializeLog() is called are written
to STDERR", the oneDNN notice, "Could not find cuda drivers". They are written
before logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them,
and the oneDNN notice is printed whatever ``TF_ENABLE_ONEDNN_OPTS`` says
(only ``TF_ENABLE_ONEDNN_OPTS=0`` removes it, by turning oneDNN off, which
changes results). So :func:`quiet_tensorflow` sets the log levels for what
comes later (a failed ``cuInit`` is logged at the first operation) and points
file descriptor 2 at the null device while ``tensorflow`` itself is imported,
wherever that import happens, and nowhere else; TensorFlow's Python logger
and absl's (TensorFlow's converters warn through it: "Please consider
providing the trackable_obj argument") are then set to errors only.

LiteRT ignores every log level: its interpreter writes "INFO: Created
TensorFlow Lite XNNPACK delegate for CPU." to file descriptor 2 when it
allocates its tensors, so that call runs with descriptor 2 at the null device.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ logging, errors included
    "ABSL_MIN_LOG_LEVEL": "3",  # absl's own minimum level
    "GRPC_VERBOSITY": "ERROR",
}


def quiet_tensorflow() -> Callable[[], None]:
    """Hide TensorFlow's and LiteRT's native log lines, and absl's warnings,
    from here on (``--verbose`` shows them). Returns the function that restores
    the environment and removes the import hook, for a process that goes on
    after the command."""
    saved = {name: os.environ.get(name) for name in QUIET_ENVIRONMENT}
    os.environ.update(QUIET_ENVIRONMENT)
    finder = _QuietImport()
    sys.meta_path.insert(0, finder)

    def undo() -> None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return undo


@contextlib.contextmanager
def stderr_to_null() -> Iterator[None]:
    """Point file descriptor 2 at the null device, and back afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _quiet_tensorflow_import(module: ModuleType, run_import: Callable[[], None]) -> None:
    with stderr_to_null():
        run_import()
    # Python-side notes too, such as tf.function's retracing warning: the
    # reference generation traces one loop per model it checks, on purpose.
    module.get_logger().setLevel("ERROR")
    # absl sets its own level when it is first imported (by TensorFlow, at
    # the latest), so this comes after.
    logging.getLogger("absl").setLevel(logging.ERROR)


def _quiet_litert_import(module: ModuleType, run_import: Callable[[], None]) -> None:
    run_import()
    allocate = module.Interpreter.allocate_tensors

    @functools.wraps(allocate)
    def allocate_quietly(*args: Any, **kwargs: Any) -> Any:
        with stderr_to_null():
            return allocate(*args, **kwargs)

    module.Interpreter.allocate_tensors = allocate_quietly


# What runs a module's import, given the module and the import itself.
Quieting = Callable[[ModuleType, Callable[[], None]], None]

# The modules whose import runs through each quieting function.
_QUIETED: dict[str, Quieting] = {
    "tensorflow": _quiet_tensorflow_import,
    "ai_edge_litert.interpreter": _quiet_litert_import,
}


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`_QUIETED` as the path finder does, with a
    loader that runs their import through the quieting function."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _QUIETED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, _QUIETED[fullname])
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, quiet: Quieting) -> None:
        self._loader = loader
        self._quiet = quiet

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps the real loader: nothing after the import sees this one.
        module.__spec__.loader = module.__loader__ = self._loader
        self._quiet(module, lambda: self._loader.exec_module(module))
