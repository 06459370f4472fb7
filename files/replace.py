"""One rule for every file parity writes for a user (see :mod:`parity.files`)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from parity.runtime.bundle_format.manifest import MANIFEST_NAME
from parity.runtime.errors import ParityError
from parity.runtime.paths import as_path

# Names through which a process reaches its own open files: writing to one
# must go to the open stream, never replace the file behind it.
_PROCESS_STREAMS = ("/dev/stdin", "/dev/stdout", "/dev/stderr")
_PROCESS_STREAM_FOLDERS = ("/dev/fd/", "/proc/")


@dataclass(frozen=True)
class Target:
    """Where a write goes: ``path`` as given, ``file`` with links followed,
    and whether it is written as a ``stream`` (a device, a FIFO, a stream of
    this process) rather than replaced."""

    path: Path
    file: Path
    stream: bool


def check_target(path: str | os.PathLike[str], parameter: str = "path") -> Target:
    """Where a write of ``path`` would go, or the reason it is refused, before
    any work is done.

    Args:
        path: the file to write.
        parameter: the parameter's name in an error about its type.

    Raises:
        ParityError: a folder, a block device or socket, a FIFO nobody reads
            (checked again when writing), a file in a missing folder or inside
            a bundle folder, a dangling link.
    """
    path = as_path(path, parameter)
    text = str(path.absolute())
    if text in _PROCESS_STREAMS or text.startswith(_PROCESS_STREAM_FOLDERS):
        return Target(path, path, stream=True)
    try:
        file = path.resolve()
        mode = os.stat(file).st_mode if os.path.lexists(file) else None
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long
        raise ParityError(f"{path}: cannot be written ({_reason(exc)})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise ParityError(f"{path}: is a folder, expected a file name")
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return Target(path, file, stream=True)
    if mode is not None and not stat.S_ISREG(mode):
        raise ParityError(f"{path}: is not a regular file (a device or socket); refused")
    folder = file.parent
    if not folder.is_dir():
        where = "its folder" if file == path.absolute() else "the file its link points to: folder"
        raise ParityError(f"{path}: {where} {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParityError(f"{path}: folder {folder} is not writable")
    bundle = _enclosing_bundle(folder)
    if bundle is not None:
        raise ParityError(
            f"{path}: is inside the bundle folder {bundle}; only 'parity export' writes "
            "there, write it elsewhere"
        )
    return Target(path, file, stream=False)


def _enclosing_bundle(folder: Path) -> Path | None:
    """The parity bundle that ``folder`` is, or lies in (a bundle has
    subfolders: its test data), else None. Another program's
    ``manifest.json`` does not make a bundle."""
    for candidate in (folder, *folder.parents):
        manifest = candidate / MANIFEST_NAME
        if not manifest.is_file():
            continue
        try:
            with open(manifest, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            continue
        if b'"format": "parity-bundle"' in head or b'"format":"parity-bundle"' in head:
            return candidate
    return None


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary stream whose bytes become the file ``path``, by the rule of
    :mod:`parity.files`: a regular file is replaced once the block ends
    without error (on an error the old file stays whole and nothing is left
    behind); a device or stream is written as the block writes.

    Args:
        path: the file to write or replace.

    Raises:
        ParityError: a target :func:`check_target` refuses, or a write the
            file system refused (one line).
    """
    target = check_target(path)
    if target.stream:
        with _opened_stream(target) as stream:
            yield stream
        return
    temporary = target.file.parent / f".{target.file.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(temporary, "xb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target.file)
    except OSError as exc:
        raise ParityError(f"{target.path}: cannot write ({_reason(exc)})") from None
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _opened_stream(target: Target) -> Iterator[BinaryIO]:
    """``target`` opened for writing as it is: appended to, never truncated
    or replaced; a FIFO without a reader is refused rather than waited on."""
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NONBLOCK", 0)
    try:
        handle = os.open(target.path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ParityError(f"{target.path}: is a FIFO that no process reads; refused") from None
        raise ParityError(f"{target.path}: cannot write ({_reason(exc)})") from None
    if hasattr(os, "set_blocking"):
        os.set_blocking(handle, True)
    try:
        with open(handle, "wb", closefd=True) as stream:
            yield _Unseekable(stream)
    except OSError as exc:
        raise ParityError(f"{target.path}: cannot write ({_reason(exc)})") from None


class _Unseekable(io.RawIOBase):
    """A stream written in order, with no position: a device or a pipe says
    it has one (``/dev/null`` is always at 0), and ``zipfile`` (an ``.npz``)
    would write offsets from it that do not fit its records. Without one, it
    writes a zip that needs none."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise io.UnsupportedOperation("a stream has no position")

    def write(self, data: Any) -> int:
        return self._stream.write(data)

    def flush(self) -> None:
        self._stream.flush()


def save_array(path: str | os.PathLike[str], value: np.ndarray) -> None:
    """Write ``value`` to ``path`` as a ``.npy`` file, by :func:`replacing`.

    Args:
        path: the ``.npy`` file to write or replace.
        value: the array (no Python objects: written without pickles).
    """
    with replacing(path) as stream:
        np.save(stream, value, allow_pickle=False)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
