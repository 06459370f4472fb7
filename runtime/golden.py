"""Reading a bundle's golden data: inputs and TensorFlow's outputs for them,
stored at export so that a machine without TensorFlow can check the bundle."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.errors import BundleError
from runtime.manifest import safe_member
from runtime.npy import load_arrays
from runtime.store import sha256_file


def read_golden(bundle: Any) -> dict[str, np.ndarray]:
    """The golden arrays of a loaded bundle, keyed ``<graph>/inputs/<name>``,
    ``<graph>/outputs/<name>`` (and ``generation/...`` for seq2seq); the file's
    hash is checked against the manifest."""
    entry = bundle.manifest.golden
    if not entry:
        raise BundleError(f"{bundle.path}: the bundle holds no golden data")
    path = safe_member(bundle.path, entry["file"])
    if not path.is_file():
        raise BundleError(f"{bundle.path}: golden data file {entry['file']!r} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise BundleError(f"{path}: sha256 does not match the manifest (file changed or corrupt)")
    return load_arrays(path)
