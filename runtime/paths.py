"""File paths given to the Python API.

``pathlib.Path(None)`` and ``Path(3)`` raise a TypeError and a NUL character a
ValueError deep inside ``os``; a caller deserves one line naming the parameter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParameterError


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
