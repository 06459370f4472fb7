"""Writing a bundle folder atomically, without ever losing a user's folder.

The whole bundle is written into a staging folder beside its destination and
swapped into place in one step (Linux's ``renameat2(RENAME_EXCHANGE)``), so
the destination holds a whole bundle, the old one or the new one, at every
instant. Where the exchange is not available, the old bundle is renamed aside
first and the new one renamed in; a process killed between the two leaves the
old bundle aside, and the next export or load of the destination renames it
back (the reader meanwhile reads it where it is). A folder that is not a
parity bundle is never replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import functools
import io
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parity.exporter.test_data import test_data_files
from parity.runtime.bundle_format.digest import sha256_bytes
from parity.runtime.bundle_format.leftovers import (
    NEW,
    OLD,
    aside_bundle,
    leftover_prefix,
    leftovers,
)
from parity.runtime.bundle_format.manifest import (
    MANIFEST_NAME,
    GraphSpec,
    Manifest,
    read_manifest,
)
from parity.runtime.errors import BundleError, ParityError
from parity.runtime.paths import as_path, resolved

GOLDEN_NAME = "golden.npz"
# How many times a swap is tried while other exports write the same folder.
SWAP_ATTEMPTS = 5

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
    return buffer.getvalue()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows
    (``os.umask`` can only be read by setting it, which races with threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o077)
    os.umask(old)
    return old


def check_out_dir(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Refuse an ``out_dir`` that an export must not replace, and return the
    folder the bundle will be written to (symbolic links resolved).

    ``out_dir`` may be missing, an empty folder or a parity bundle; any other
    folder (a user's notes, results) is refused and left untouched, as is a
    folder that holds ``source``, the file the bundle is exported from."""
    out_dir = as_path(out_dir, "out_dir")
    target = resolved(out_dir)
    if not target.name:
        raise ParityError(f"{out_dir}: cannot write a bundle over the root folder")
    if target.exists() and not target.is_dir():
        raise ParityError(f"{out_dir}: exists and is not a folder")
    if target.is_dir() and not _replaceable(target):
        raise ParityError(_not_a_bundle(out_dir))
    if source is not None and target in resolved(as_path(source, "source")).parents:
        raise ParityError(
            f"{out_dir}: holds the source model {Path(source).name}; "
            "export to a folder of its own, the folder is left untouched"
        )
    return target


def write_bundle(
    out_dir: Path,
    manifest: Manifest,
    graph_bytes: Mapping[str, bytes],
    golden: Mapping[str, np.ndarray] | None = None,
) -> Manifest:
    """Write ``manifest`` with its graphs (keyed like ``manifest.graphs``) and
    golden arrays into ``out_dir``, filling in every file's sha256.

    Returns the manifest as written. ``out_dir`` may be missing, empty or an
    existing bundle, which is replaced only once the new one is complete; any
    other folder is refused (:func:`check_out_dir`). Files and folders get the
    user's umask."""
    target = check_out_dir(out_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(target)
        prefix = leftover_prefix(target, NEW, os.getpid())
        staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    except OSError as exc:
        raise ParityError(f"{out_dir}: cannot write here ({exc.strerror})") from None
    written = None
    try:
        staging.chmod(0o777 & ~current_umask())
        written = _write_files(staging, manifest, graph_bytes, golden)
        _swap_into_place(staging, target, out_dir)
        _fsync_folder(target.parent)
    except OSError as exc:
        raise ParityError(f"{out_dir}: cannot write the bundle ({exc})") from None
    finally:
        if written is None:
            shutil.rmtree(staging, ignore_errors=True)  # our own unfinished bundle
        else:
            _remove_bundle(staging)  # the old bundle after a swap, the new one after a failure
    return written


def _write_files(
    folder: Path,
    manifest: Manifest,
    graph_bytes: Mapping[str, bytes],
    golden: Mapping[str, np.ndarray] | None,
) -> Manifest:
    graphs = {}
    for key, spec in manifest.graphs.items():
        data = graph_bytes[key]
        (folder / spec.file).write_bytes(data)
        graphs[key] = dataclasses.replace(spec, sha256=sha256_bytes(data))
    golden_entry, test_data = None, {}
    if golden:
        data = npz_bytes(golden)
        (folder / GOLDEN_NAME).write_bytes(data)
        golden_entry = {"file": GOLDEN_NAME, "sha256": sha256_bytes(data)}
        for relative, data in test_data_files(manifest, graph_bytes, golden).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
            test_data[relative] = sha256_bytes(data)
    written = dataclasses.replace(manifest, graphs=graphs, golden=golden_entry, test_data=test_data)
    (folder / MANIFEST_NAME).write_text(written.to_json(), encoding="utf-8")
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    return written


def placeholder_graph(file: str, inputs, outputs) -> GraphSpec:
    """A :class:`GraphSpec` whose hash :func:`write_bundle` fills in."""
    return GraphSpec(file=file, sha256="", inputs=tuple(inputs), outputs=tuple(outputs))


def recover_bundle(out_dir: str | Path) -> None:
    """Where ``out_dir`` is missing and an export was stopped while its old
    bundle was set aside, rename the old bundle back. Never raises: a folder
    that cannot be written is left as it is."""
    aside = aside_bundle(Path(out_dir).resolve())
    if aside is not None:
        with contextlib.suppress(OSError):
            os.rename(aside, Path(out_dir).resolve())


def clean_leftovers(out_dir: Path) -> None:
    """Recover a bundle set aside by a stopped export (:func:`recover_bundle`),
    then remove what stopped exports left beside ``out_dir``: staging folders
    and old bundles whose process is gone or that are over an hour old."""
    recover_bundle(out_dir)
    for leftover in leftovers(out_dir):
        if leftover.stale:
            shutil.rmtree(leftover.path, ignore_errors=True)


def _replaceable(folder: Path) -> bool:
    """Whether an export may replace ``folder``: an empty folder, or a bundle."""
    try:
        if not any(folder.iterdir()):
            return True
        read_manifest(folder)
    except (OSError, BundleError):
        return False
    return True


def _not_a_bundle(out_dir: Path) -> str:
    return (
        f"{out_dir}: is a folder but not a parity bundle (no valid {MANIFEST_NAME}); "
        "it is left untouched, choose a new or empty folder"
    )


def _remove_bundle(folder: Path) -> None:
    """Remove ``folder`` if it is empty or a bundle: never a user's folder."""
    if os.path.isdir(folder) and not os.path.islink(folder) and _replaceable(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where folders can be synced)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _swap_into_place(staging: Path, target: Path, out_dir: Path) -> None:
    """Put the bundle at ``staging`` at ``target``. Afterwards ``staging``
    holds what ``target`` held (the old bundle), or nothing."""
    for _ in range(SWAP_ATTEMPTS):
        placed = _exchange(staging, target, out_dir)
        if placed is None:
            placed = _rename_twice(staging, target, out_dir)
        if placed:
            return
    raise ParityError(f"{out_dir}: other exports are writing here at the same time; try again")


def _exchange(staging: Path, target: Path, out_dir: Path) -> bool | None:
    """Swap ``staging`` and ``target`` in one step, or move ``staging`` to a
    missing ``target``. True once placed; False when another export got in
    first (try again); None where the system cannot exchange."""
    try:
        if not _renameat2(staging, target, _RENAME_EXCHANGE):
            return None
    except FileNotFoundError:  # nothing at target yet
        try:
            return _renameat2(staging, target, _RENAME_NOREPLACE) or None
        except (FileExistsError, FileNotFoundError):
            return False
    if not _replaceable(staging):  # another process put a folder of its own there
        _renameat2(staging, target, _RENAME_EXCHANGE)
        raise ParityError(_not_a_bundle(out_dir))
    return True


def _rename_twice(staging: Path, target: Path, out_dir: Path) -> bool:
    """Set an old bundle at ``target`` aside, rename ``staging`` in, and remove
    the old bundle. True once placed; False when another export
    got in first. A process stopped between the two renames leaves the old
    bundle aside for :func:`recover_bundle`."""
    aside = None
    if os.path.lexists(target):
        aside = target.parent / (leftover_prefix(target, OLD, os.getpid()) + secrets.token_hex(4))
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            return False
        if not _replaceable(aside):
            os.rename(aside, target)
            raise ParityError(_not_a_bundle(out_dir))
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            if aside is not None:
                os.rename(aside, target)
            raise
        placed = False  # another export's bundle is in place; the one aside is older
    else:
        placed = True
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)  # an old bundle, checked above
    return placed


@functools.cache
def _libc_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    path = ctypes.c_char_p
    function.argtypes = [ctypes.c_int, path, ctypes.c_int, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _renameat2(source: Path, destination: Path, flags: int) -> bool:
    """Linux's ``renameat2``: True when done, False where this system or this
    filesystem does not support it; any other failure raises its OSError."""
    function = _libc_renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(destination))
