"""Golden data: inputs and TensorFlow's outputs for them, stored at export so
that a machine without TensorFlow can check the bundle.

One ``.npz`` holds every array, keyed ``<draw>/inputs/<name>`` and
``<draw>/outputs/<name>``. A draw is one call of one graph: the graph's key
for the first draw, ``<key>.<n>`` for later ones. A seq2seq bundle also holds
a whole generation under the draw ``generation``: the encoder inputs, the
first step input ``start`` and the stacked step outputs. A stream bundle
holds a whole stream fed in chunks under the draw ``stream_chunks``: the
inputs (the whole sequences), ``lengths`` (each chunk's), ``resets`` (the
rows reset before each chunk, ``(chunks, batch)`` booleans), the outputs
(per-step ones joined over time, per-chunk ones stacked) and
``states/<state input>`` (the final states).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from parity.runtime.bundle_format.digest import sha256_file
from parity.runtime.bundle_format.manifest import GraphSpec, safe_member
from parity.runtime.errors import BundleError
from parity.runtime.npy import load_arrays

GENERATION = "generation"
START = "start"
STREAM_CHUNKS = "stream_chunks"


def draw_name(graph_key: str, index: int) -> str:
    """The name of a graph's ``index``-th draw (from 0)."""
    return graph_key if index == 0 else f"{graph_key}.{index}"


def input_key(draw: str, name: str) -> str:
    """The key of input ``name`` of ``draw``."""
    return f"{draw}/inputs/{name}"


def output_key(draw: str, name: str) -> str:
    """The key of output ``name`` of ``draw``."""
    return f"{draw}/outputs/{name}"


def golden_draws(
    golden: Mapping[str, np.ndarray], graphs: Mapping[str, GraphSpec]
) -> Iterator[tuple[str, str]]:
    """``(draw, graph key)`` of every stored draw of a graph whose inputs are
    all there."""
    draws = sorted({name.split("/", 1)[0] for name in golden})
    for draw in draws:
        key = draw.split(".", 1)[0]
        graph = graphs.get(key)
        if graph and all(input_key(draw, spec.name) in golden for spec in graph.inputs):
            yield draw, key


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
