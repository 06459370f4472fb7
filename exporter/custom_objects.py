"""The user's own Keras classes and functions, for models that need them to load.

A model with a custom layer (a class registered with
``keras.saving.register_keras_serializable``, say) cannot be rebuilt by a
process that never imported that class. ``--custom-objects FILE.py`` names
the Python file that defines it: the file is run (it is trusted code, as a
``Lambda`` under ``--unsafe`` is), which registers what it registers, and
hands Keras' loader, by name, the mapping the file names ``custom_objects``
where it has one (Keras' own word for it), else every class and function it
defines (not those it imports: a ``typing.Any`` would stand in for Keras'
own ``Any`` op).
In Python, ``custom_objects=`` takes the same file's path or a mapping of
names to objects, as Keras' own ``custom_objects`` does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParityError, quoted
from parity.runtime.paths import as_path

CustomObjects = Mapping[str, Any] | str | Path | None


def custom_objects(source: CustomObjects) -> dict[str, Any]:
    """The objects ``source`` gives, by name.

    Args:
        source: None (no custom objects), a mapping of names to classes and
            functions, or the path of a Python file that defines them (run
            once per process; its ``custom_objects`` mapping where it has one,
            else every class and function it defines).

    Raises:
        ParityError: a path that is not a ``.py`` file, or a file that fails
            to run, naming its exception and the line of the file it came from.
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = as_path(source, "custom_objects")
    if path.suffix != ".py" or not path.is_file():
        raise ParityError(
            f"{path}: expected a Python file (.py) that defines the model's custom objects"
        )
    module = _loaded(path)
    declared = getattr(module, "custom_objects", None)
    if isinstance(declared, Mapping):
        return dict(declared)
    return {
        name: value
        for name, value in vars(module).items()
        if (isinstance(value, type) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def _loaded(path: Path) -> Any:
    """The module of ``path``, run the first time it is asked for: its name
    comes from the file's content, so the same file runs once and an edited
    one again."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    name = f"parity_custom_objects_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may raise anything
        del sys.modules[name]
        line = _line_in(exc, path)
        raise ParityError(
            f"{path}{line}: your custom objects file raised {type(exc).__name__}: {quoted(exc)}"
        ) from None
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """``:N`` for the last line of ``path`` in ``exc``'s traceback, else ""."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f":{frames[-1].lineno}" if frames else ""
