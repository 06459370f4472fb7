"""Saving a Keras model as a user's ``.keras`` file, by the rule of
:mod:`parity.files`.

Keras writes a model only to a path of its own choosing (it must end with
``.keras``): it writes into a temporary folder beside the target (on the same
file system) and the bytes go to the target as every other file parity
writes: a regular file replaced whole, a link written through, a device or
stream written to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from parity.files.replace import check_target, replacing
from parity.runtime.errors import ParityError


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if a model can be saved there: a ``.keras`` name that
    :func:`parity.files.check_target` allows; checked before any training.

    Args:
        path: the model file to write.

    Raises:
        ParityError: another suffix, or a target parity does not write.
    """
    target = check_target(path)
    if target.path.suffix != ".keras":
        raise ParityError(f"{target.path}: the model file name must end with .keras")
    return target.path


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save the Keras ``model`` as the ``.keras`` file ``path``: a reader of
    ``path`` sees the old file or the whole new one, never a partial one.

    Args:
        model: a Keras model.
        path: the ``.keras`` file to write (:func:`check_model_path`).

    Raises:
        ParityError: a path :func:`check_model_path` refuses, or a write the
            file system refused.
    """
    path = check_model_path(path)
    target = check_target(path)
    beside = None if target.stream else target.file.parent
    try:
        with tempfile.TemporaryDirectory(prefix=".parity-model-", dir=beside) as folder:
            written = Path(folder) / "model.keras"
            model.save(written)
            with open(written, "rb") as source, replacing(path) as stream:
                shutil.copyfileobj(source, stream)
    except OSError as exc:
        raise ParityError(f"{path}: cannot save the model ({exc.strerror or exc})") from None
    return path
