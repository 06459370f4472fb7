"""Size limits that a user may raise through the environment.

Each module that refuses oversized input before allocating owns its limit (a
module constant, the default) and names the environment variable that raises
it; this module reads that variable and writes sizes for messages.
"""

from __future__ import annotations

import os

from parity.runtime.errors import ParameterError


def byte_limit(variable: str, default: int) -> int:
    """The limit in bytes: the environment variable ``variable`` (a whole
    number of bytes) when set, else ``default``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ParameterError(variable, f"must be a whole number of bytes above 0, got {text!r}")
    return value


def describe_bytes(size: int) -> str:
    """``size`` for a message: "2.4 GiB", "64.0 MiB", "512 bytes"."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
