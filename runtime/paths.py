"""File paths given to the Python API, and files written in place of others.

``pathlib.Path(None)`` and ``Path(3)`` raise a TypeError and a NUL character a
ValueError deep inside ``os``; a caller deserves one line naming the parameter.
Every file parity writes for a user (reports, plots, arrays, the support
matrix) goes through :func:`replaced_atomically`: written beside its target
and renamed over it, so an interrupted write leaves the old file whole, with
the user's umask (not ``mkstemp``'s 0600).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParameterError, ParityError


def as_path(value: Any, parameter: str = "path") -> Path:
    """``value`` (a ``str`` or ``os.PathLike`` of ``str``) as a ``Path``;
    anything else (None, a number, bytes) raises :class:`ParameterError`
    naming ``parameter``."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise ParameterError(
            parameter, f"expected a file path (str or os.PathLike), got {type(value).__name__}"
        )
    if not text:
        raise ParameterError(parameter, "is empty, expected a file path")
    if "\x00" in text:
        raise ParameterError(parameter, f"{text!r} holds a NUL character")
    return Path(text)


def file_target(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file that can be written: not a folder, in a folder that exists.

    Args:
        path: the file to write or replace.

    Raises:
        ParityError: ``path`` is a folder, or its folder does not exist.
    """
    path = as_path(path)
    folder = path.resolve().parent
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a file name")
    if not folder.is_dir():
        raise ParityError(f"{path}: its folder {folder} does not exist")
    return path


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write; once the
    block ends without error, rename it over ``path``, else remove it.

    Args:
        path: the file to write or replace.

    Raises:
        ParityError: ``path`` is a folder, its folder does not exist, or the
            file system refused the write (one line, nothing left behind).
    """
    path = file_target(path)
    folder = path.resolve().parent
    # A hidden name in the same folder: the rename is atomic on one file system.
    temporary = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise ParityError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        temporary.unlink(missing_ok=True)
