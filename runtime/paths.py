"""File paths given to parity, and the files they name.

``pathlib.Path(None)`` and ``Path(3)`` raise a TypeError and a NUL character a
ValueError deep inside ``os``; a name longer than the file system takes, a
link that points at itself, a FIFO or a device where a file is expected
raise ``OSError``, ``RuntimeError``, or block forever. A caller deserves one
line naming the parameter or the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParameterError, ParityError

# The longest file name and path the common file systems take (Linux's
# NAME_MAX and PATH_MAX, in bytes); longer ones fail in the first system call.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095
# How much of a refused path a message quotes.
_QUOTED = 80
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def as_path(value: Any, parameter: str = "path") -> Path:
    """``value`` (a ``str`` or ``os.PathLike`` of ``str``) as a ``Path``;
    anything else (None, a number, bytes), an empty path, a NUL character, a
    name longer than :data:`MAX_NAME_BYTES` or a path longer than
    :data:`MAX_PATH_BYTES` raises :class:`ParameterError` naming ``parameter``."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise ParameterError(
            parameter, f"expected a file path (str or os.PathLike), got {type(value).__name__}"
        )
    if not text:
        raise ParameterError(parameter, "is empty, expected a file path")
    if "\x00" in text:
        raise ParameterError(parameter, f"{shortened(text)!r} holds a NUL character")
    encoded = os.fsencode(text)
    if len(encoded) > MAX_PATH_BYTES:
        raise ParameterError(
            parameter,
            f"{shortened(text)}: a path of {len(encoded)} bytes, longer than the "
            f"{MAX_PATH_BYTES} a file system takes",
        )
    longest = max(len(os.fsencode(part)) for part in Path(text).parts)
    if longest > MAX_NAME_BYTES:
        raise ParameterError(
            parameter,
            f"{shortened(text)}: a name of {longest} bytes, longer than the "
            f"{MAX_NAME_BYTES} a file system takes",
        )
    return Path(text)


def shortened(text: str) -> str:
    """``text`` cut for a message: its start and end around "..." when long.

    Args:
        text: a path, or a value a message quotes.
    """
    if len(text) <= _QUOTED:
        return text
    return f"{text[: _QUOTED // 2]}...{text[-_QUOTED // 2 :]}"


def resolved(path: Path, error: type[ParityError] = ParityError) -> Path:
    """``path`` with every link followed, as ``Path.resolve`` gives it; a
    link loop or a path the system refuses raises ``error`` in one line.

    Args:
        path: the path.
        error: the exception to raise.
    """
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python 3.12 and before)
        raise error(f"{shortened(str(path))}: {_reason(exc)}") from None


def regular_file(path: Path, what: str = "file", error: type[ParityError] = ParityError) -> Path:
    """``path`` if it names a regular file (links followed). A FIFO, a
    device (a link to ``/dev/zero``), a socket or a folder is refused before
    anything opens it: reading one may block forever or never end.

    Args:
        path: the file.
        what: what the file is, for the message ("graph file", "shard").
        error: the exception to raise.

    Raises:
        ``error``: no such file, a link loop, a path the system refuses, or
            not a regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{shortened(str(path))}: no such {what}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{shortened(str(path))}: {_reason(exc)}") from None
    if not stat.S_ISREG(mode):
        raise error(
            f"{shortened(str(path))}: is {_kind(mode)}, expected a regular {what}; refused "
            "(reading it could block or never end)"
        )
    return path


def file_kind(path: Path) -> str | None:
    """What ``path`` names when it is neither a regular file nor a folder
    (links followed): "a FIFO", "a character device", ...; None for a
    regular file, a folder, or nothing at all.

    Args:
        path: the path.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else _kind(mode)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symbolic link loop"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
