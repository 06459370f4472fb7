"""Loading and saving user arrays (``.npy``/``.npz``) without pickles.

Arrays come from files users did not always make themselves, so object arrays
(which need pickle, and so can run code) are refused.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from parity.runtime.errors import ParityError


def load_array(path: Path) -> np.ndarray:
    """One array from a ``.npy`` file."""
    value = _load(Path(path))
    if isinstance(value, dict):
        raise ParityError(f"{path}: expected one array (.npy), found an .npz archive")
    return value


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Named arrays from an ``.npz`` file."""
    value = _load(Path(path))
    if not isinstance(value, dict):
        raise ParityError(f"{path}: expected named arrays (.npz), found a single array")
    return value


def _load(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    if not path.exists():
        raise ParityError(f"{path}: no such file")
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a .npy or .npz file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise ParityError(f"{path}: not a numpy .npy or .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ParityError(f"{path}: holds Python objects (pickles), refused") from None
        raise ParityError(f"{path}: not a numpy array file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ParityError(f"{path}: unreadable numpy file ({exc})") from None


def save_array(path: Path, value: np.ndarray) -> None:
    """Write ``value`` to ``path`` (.npy) atomically."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ParityError(f"{path}: its folder does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npy", dir=folder)
    except OSError as exc:
        raise ParityError(f"{path}: cannot write here ({exc.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, value, allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
