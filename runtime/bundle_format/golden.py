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
from parity.runtime.bundle_format.manifest import GraphSpec, Manifest, TensorSpec, safe_member
from parity.runtime.errors import BundleError, InputError, ParityError
from parity.runtime.inputs import check_array, describe_shape
from parity.runtime.npy import load_arrays
from parity.runtime.paths import regular_file

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
    hash is checked against the manifest, and every array against the
    tensor of the manifest it stands for (:func:`check_golden`).

    Raises:
        BundleError: no golden data, a missing, unreadable or changed file, or
            arrays that do not match the manifest.
    """
    entry = bundle.manifest.golden
    if not entry:
        raise BundleError(f"{bundle.path}: the bundle holds no golden data")
    path = safe_member(bundle.path, entry["file"])
    if not path.exists():
        raise BundleError(f"{bundle.path}: golden data file {entry['file']!r} is missing")
    regular_file(path, "golden data file", BundleError)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise BundleError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if digest != entry["sha256"]:
        raise BundleError(f"{path}: sha256 does not match the manifest (file changed or corrupt)")
    try:
        golden = load_arrays(path)
    except ParityError as exc:
        raise BundleError(str(exc)) from None
    check_golden(golden, bundle.manifest, str(path))
    return golden


def check_golden(golden: Mapping[str, np.ndarray], manifest: Manifest, origin: str) -> None:
    """Every golden array must be what its key says: an input or output of a
    graph of ``manifest`` (or of the generation), of that tensor's dtype,
    rank and fixed dims. A golden file whose arrays do not fit would be
    judged as a disagreement of the runtimes; it is a damaged bundle.

    Args:
        golden: the arrays, by key.
        manifest: the bundle's manifest.
        origin: the golden file, for messages.

    Raises:
        BundleError: naming the first array that does not fit.
    """
    for key, array in golden.items():
        spec, is_input = _golden_spec(key, manifest)
        if spec is None:
            raise BundleError(
                f"{origin}: array {key!r} names no tensor of the manifest; the bundle does not "
                "match its manifest"
            )
        problem = _misfit(spec, array, is_input)
        if problem:
            raise BundleError(
                f"{origin}: array {key!r} {problem}; the bundle does not match its manifest"
            )


def _golden_spec(key: str, manifest: Manifest) -> tuple[TensorSpec | None, bool]:
    """The tensor a golden key stands for, and whether it is an input."""
    draw, _, rest = key.partition("/")
    if draw == STREAM_CHUNKS and manifest.streaming is not None:
        return _stream_spec(rest, manifest)
    side, _, name = rest.partition("/")
    if side not in ("inputs", "outputs") or not name:
        return None, False
    is_input = side == "inputs"
    spec = manifest.seq2seq
    if draw == GENERATION and spec is not None:
        step = manifest.graph(spec.step_graph)
        step_input = next(t for t in step.inputs if t.name == spec.step_input)
        if is_input and name == START:
            return TensorSpec(START, step_input.dtype, step_input.shape, step_input.domain), True
        if is_input:
            encoder = manifest.graph(spec.encoder_graph).inputs
            return next((t for t in encoder if t.name == name), None), True
        if name != spec.step_output:
            return None, False
        output = next(t for t in step.outputs if t.name == name)
        return TensorSpec(name, output.dtype, ("batch", "steps", *output.shape[2:])), False
    graph = manifest.graphs.get(draw.split(".", 1)[0])
    if graph is None:
        return None, is_input
    tensors = graph.inputs if is_input else graph.outputs
    return next((t for t in tensors if t.name == name), None), is_input


def _stream_spec(rest: str, manifest: Manifest) -> tuple[TensorSpec | None, bool]:
    """The tensor a key of the golden stream stands for (the module
    docstring's keys), and whether it is an input."""
    spec = manifest.streaming
    graph = manifest.graph(spec.graph)
    side, _, name = rest.partition("/")
    if rest == "lengths":
        return TensorSpec(rest, "int64", ("chunks",)), False
    if rest == "resets":
        return TensorSpec(rest, "bool", ("chunks", "batch")), False
    if side == "inputs" and name in spec.inputs:
        return graph.input(name), True
    if side == "states" and any(state.input == name for state in spec.states):
        return graph.input(name), False
    output = next((o for o in spec.outputs if side == "outputs" and o.name == name), None)
    if output is None:
        return None, False
    tensor = graph.output(name)
    if output.per == "chunk":  # stacked over the chunks
        return TensorSpec(name, tensor.dtype, ("chunks", *tensor.shape)), False
    return tensor, False


def _misfit(spec: TensorSpec, array: np.ndarray, is_input: bool) -> str:
    """How ``array`` fails to be a value of ``spec`` ("" where it is one):
    inputs as the runtime checks them, outputs by dtype, rank and fixed dims."""
    if is_input:
        try:
            check_array(spec, array)
        except InputError as exc:
            return f"does not fit the input ({exc})"
        return ""
    wanted = f"{spec.dtype} {describe_shape(spec.shape)}"
    found = f"{array.dtype} {array.shape}"
    if array.dtype != np.dtype(spec.dtype) or array.ndim != spec.rank:
        return f"is {found}, the manifest says {wanted}"
    for dim, size in zip(spec.shape, array.shape, strict=True):
        if (isinstance(dim, int) and size != dim) or size == 0:
            return f"is {found}, the manifest says {wanted}"
    return ""
