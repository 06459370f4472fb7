"""Writing a bundle folder atomically.

The whole bundle is written into a temporary folder beside its destination and
renamed into place, so an interrupted export leaves either the old bundle or
the new one, whole, and never a mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parity.runtime.bundle_format.manifest import MANIFEST_NAME, GraphSpec, Manifest
from parity.runtime.errors import ParityError

GOLDEN_NAME = "golden.npz"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
    return buffer.getvalue()


def write_bundle(
    out_dir: Path,
    manifest: Manifest,
    graph_bytes: Mapping[str, bytes],
    golden: Mapping[str, np.ndarray] | None = None,
) -> Manifest:
    """Write ``manifest`` with its graphs (keyed like ``manifest.graphs``) and
    golden arrays into ``out_dir``, filling in every file's sha256.

    Returns the manifest as written. An existing bundle at ``out_dir`` is
    replaced only once the new one is complete.
    """
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    if out_dir.exists() and not out_dir.is_dir():
        raise ParityError(f"{out_dir}: exists and is not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    except OSError as exc:
        raise ParityError(f"{out_dir}: cannot write here ({exc.strerror})") from None
    try:
        graphs = {}
        for key, spec in manifest.graphs.items():
            data = graph_bytes[key]
            (staging / spec.file).write_bytes(data)
            graphs[key] = dataclasses.replace(spec, sha256=sha256_bytes(data))
        golden_entry = None
        if golden:
            data = npz_bytes(golden)
            (staging / GOLDEN_NAME).write_bytes(data)
            golden_entry = {"file": GOLDEN_NAME, "sha256": sha256_bytes(data)}
        written = dataclasses.replace(manifest, graphs=graphs, golden=golden_entry)
        (staging / MANIFEST_NAME).write_text(written.to_json(), encoding="utf-8")
        _fsync_tree(staging)
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an old bundle is moved aside first and
    removed only after the new one is in place."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.resolve().parent))
    retired.rmdir()
    os.replace(out_dir, retired)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(retired, out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def placeholder_graph(file: str, inputs, outputs) -> GraphSpec:
    """A :class:`GraphSpec` whose hash :func:`write_bundle` fills in."""
    return GraphSpec(file=file, sha256="", inputs=tuple(inputs), outputs=tuple(outputs))
