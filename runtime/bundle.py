"""A loaded bundle: its manifest and one ONNX Runtime session per graph."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from parity.runtime import bounds
from parity.runtime.bundle_format.digest import sha256_bytes, sha256_file
from parity.runtime.bundle_format.leftovers import aside_bundle
from parity.runtime.bundle_format.manifest import (
    GraphSpec,
    Manifest,
    TensorSpec,
    read_manifest,
    safe_member,
)
from parity.runtime.errors import BundleError, InputError, quoted
from parity.runtime.inputs import check_feeds, check_prefix_mask, describe_shape
from parity.runtime.limits import describe_bytes
from parity.runtime.paths import as_path, regular_file, resolved
from parity.runtime.providers import (
    ONE_ROW_SPLIT_MACS,
    SINGLE_ROW_THREADS,
    check_device,
    open_session,
    session_device,
)

# The largest graph file: protobuf cannot hold a message over 2 GiB, so a
# larger file is refused before it is read (and before it is hashed).
MAX_GRAPH_BYTES = 2 * 2**30


class Bundle:
    """A bundle opened for running. Sessions are created once; ``run`` may be
    called from several threads at once (ONNX Runtime sessions are thread-safe).

    ``providers`` maps each graph to the providers its session really got, in
    priority order; ``device`` is "gpu" when every session runs on CUDA.
    On the CPU a batch of one row of a graph in ``one_row_files`` (graph to
    its file and sha256) runs on a second session of that file with
    :data:`~parity.runtime.providers.SINGLE_ROW_THREADS` threads, opened when
    first needed from the file's bytes once they match the sha256 again."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        sessions: Mapping[str, Any],
        one_row_files: Mapping[str, tuple[Path, str]] | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._sessions = dict(sessions)
        self._one_row_files = dict(one_row_files or {})
        self._single_row: dict[str, Any] = {}
        self.providers = {key: tuple(s.get_providers()) for key, s in self._sessions.items()}
        devices = {session_device(s) for s in self._sessions.values()}
        self.device = "gpu" if devices == {"gpu"} else "cpu"

    def session(self, graph: str | None = None, batch: int | None = None) -> Any:
        """The ONNX Runtime session of ``graph`` (the only graph when omitted)
        for a batch of ``batch`` rows (None: any)."""
        key = self._key(graph)
        session = self._sessions[key]
        if batch != 1 or key not in self._one_row_files or session_device(session) != "cpu":
            return session
        if key not in self._single_row:
            file, digest = self._one_row_files[key]
            data = _checked_graph_bytes(file, digest)
            self._single_row[key] = open_session(data, file, "cpu", threads=SINGLE_ROW_THREADS)
        return self._single_row[key]

    def run(self, feeds: Mapping[str, Any], graph: str | None = None) -> dict[str, np.ndarray]:
        """Run ``graph`` on named inputs (checked first) and return named outputs.

        Args:
            feeds: one array per input name.
            graph: the graph's key; None for a bundle of one graph.

        Raises:
            InputError: ``feeds`` that do not fit the graph.
            RunError: ONNX Runtime failed on inputs that passed the checks.
            LimitError: the run went beyond a limit of :mod:`parity.runtime.bounds`.
        """
        key = self._key(graph)
        spec = self.manifest.graph(key)
        checked = check_feeds(spec, feeds)
        mask = self.manifest.mask
        if mask is not None and mask.fused and mask.input in checked:
            check_prefix_mask(checked[mask.input], mask)
        names = [output.name for output in spec.outputs]
        rows = [checked[t.name].shape[0] for t in spec.inputs if t.shape[:1] == ("batch",)]
        batch = rows[0] if rows else None
        values = bounds.run(self.session(key, batch), names, checked, spec.file)
        return dict(zip(names, values, strict=True))

    def _key(self, graph: str | None) -> str:
        if graph is None:
            if len(self._sessions) != 1:
                raise InputError(
                    f"{self.path}: the bundle has graphs {', '.join(self._sessions)}; name one"
                )
            return next(iter(self._sessions))
        self.manifest.graph(graph)  # a clear error for an unknown key
        return graph

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, kind={self.manifest.kind!r}, device={self.device!r})"


def load_bundle(path: str | Path, device: str = "auto", *, tf32: bool = False) -> Bundle:
    """Open the bundle at ``path``: validate the manifest, check the sha256 of
    every file it names and of every external data file a graph reads, and
    create a session per graph on ``device`` ("auto", "cpu" or "gpu") from
    the very bytes that were checked. ``tf32`` allows TF32 matmuls on CUDA
    (off by default). Nothing is written.

    An export stopped while it had set the old bundle aside leaves ``path``
    missing; that bundle is then read where it lies, and is the returned
    bundle's ``path`` (the next export puts it back)."""
    check_device(device)
    path = as_path(path)
    folder = path
    if not os.path.lexists(path):
        folder = aside_bundle(resolved(path, BundleError)) or path
    manifest = read_manifest(folder)
    sessions, one_row_files = {}, {}
    for key, graph in manifest.graphs.items():
        file = safe_member(folder, graph.file)
        if not os.path.lexists(file):
            raise BundleError(f"{path}: graph file {graph.file!r} is missing")
        data = _checked_graph_bytes(file, graph.sha256)
        model = _parsed(file, data)
        external = _check_external_data(folder, graph, model)
        # A graph with external data is opened by its path, which the
        # external files are found from; they were checked just now.
        session = open_session(file if external else data, file, device, tf32)
        _check_signature(file, graph, session, model)
        sessions[key] = session
        if not external and _convolution_macs(model) < ONE_ROW_SPLIT_MACS:
            one_row_files[key] = (file, graph.sha256)
    return Bundle(folder, manifest, sessions, one_row_files)


def _checked_graph_bytes(file: Path, digest: str) -> bytes:
    """The bytes of the graph ``file`` once they match ``digest``; a file
    larger than protobuf can hold (:data:`MAX_GRAPH_BYTES`) is refused
    before it is read."""
    regular_file(file, "graph file", BundleError)
    try:
        size = file.stat().st_size
        if size > MAX_GRAPH_BYTES:
            raise BundleError(
                f"{file}: {describe_bytes(size)}, beyond the {describe_bytes(MAX_GRAPH_BYTES)} an "
                "ONNX graph file can hold (larger weights belong in external data files)"
            )
        data = file.read_bytes()
    except OSError as exc:
        raise BundleError(f"{file}: unreadable ({exc.strerror or exc})") from None
    if sha256_bytes(data) != digest:
        raise BundleError(f"{file}: sha256 does not match the manifest (changed or corrupt)")
    return data


def _parsed(file: Path, data: bytes) -> Any:
    import onnx

    try:
        return onnx.ModelProto.FromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise BundleError(
            f"{file}: ONNX Runtime cannot load this graph (not an ONNX model: {quoted(exc, 400)})"
        ) from None


def _convolution_macs(model: Any) -> int:
    """Multiply-adds of one image (one item of the batch axis) through every
    ``Conv`` of ``model``'s graph whose weight is an initializer and whose
    output dims shape inference wrote down (the exporter's graphs have them);
    any other counts 0."""
    weights = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    dims = {
        value.name: tuple(
            dim.dim_value if dim.HasField("dim_value") else None
            for dim in value.type.tensor_type.shape.dim
        )
        for value in (*model.graph.value_info, *model.graph.output)
    }
    total = 0
    for node in model.graph.node:
        conv = node.op_type == "Conv" and len(node.input) > 1
        weight = weights.get(node.input[1]) if conv else None
        output = dims.get(node.output[0], ())
        if weight and len(output) > 1 and None not in output[1:]:
            total += math.prod(output[1:]) * math.prod(weight[1:])
    return total


def _check_external_data(path: Path, graph: GraphSpec, model: Any) -> bool:
    """Every file the graph reads its weights from must be listed in the
    manifest (``external_data``), inside the bundle, and match its sha256.
    ONNX Runtime reads any such file inside the bundle's folder unchecked.
    Returns whether the graph reads any."""
    folder = PurePosixPath(graph.file).parent
    for location in sorted(set(_external_locations(model))):
        member = str(folder / location)
        if member not in graph.external_data:
            raise BundleError(
                f"{path / graph.file}: reads external data {location!r} that the manifest "
                "does not list"
            )
    for member, digest in graph.external_data.items():
        file = safe_member(path, member)
        if not os.path.lexists(file):
            raise BundleError(f"{path}: external data file {member!r} is missing")
        regular_file(file, "external data file", BundleError)
        try:
            found = sha256_file(file)
        except OSError as exc:
            raise BundleError(f"{file}: unreadable ({exc.strerror or exc})") from None
        if found != digest:
            raise BundleError(f"{file}: sha256 does not match the manifest (changed or corrupt)")
    return bool(graph.external_data)


def _external_locations(model: Any) -> Iterator[str]:
    """The location of every tensor stored outside ``model``, subgraphs and
    functions included."""
    from onnx import AttributeProto, TensorProto

    def tensors_of_graph(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        yield from tensors_of_nodes(graph.node)

    def tensors_of_nodes(nodes: Any) -> Iterator[Any]:
        for node in nodes:
            for attribute in node.attribute:
                if attribute.type == AttributeProto.TENSOR:
                    yield attribute.t
                elif attribute.type == AttributeProto.TENSORS:
                    yield from attribute.tensors
                elif attribute.type == AttributeProto.SPARSE_TENSOR:
                    yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
                elif attribute.type == AttributeProto.SPARSE_TENSORS:
                    for sparse in attribute.sparse_tensors:
                        yield from (sparse.values, sparse.indices)
                elif attribute.type == AttributeProto.GRAPH:
                    yield from tensors_of_graph(attribute.g)
                elif attribute.type == AttributeProto.GRAPHS:
                    for subgraph in attribute.graphs:
                        yield from tensors_of_graph(subgraph)

    tensors = [tensors_of_graph(model.graph)]
    tensors += [tensors_of_nodes(function.node) for function in model.functions]
    for group in tensors:
        for tensor in group:
            if tensor.data_location == TensorProto.EXTERNAL:
                entries = {entry.key: entry.value for entry in tensor.external_data}
                yield entries.get("location", "")


def _check_signature(file: Path, graph: GraphSpec, session: Any, model: Any) -> None:
    """The graph must take and return what the manifest says: the same names,
    and for each tensor the same dtype, rank and fixed dims, where the graph
    declares them. An input the manifest calls dynamic must be dynamic in the
    graph too (ONNX Runtime would refuse other sizes)."""
    for what, specs, actual in (
        ("inputs", graph.inputs, session.get_inputs()),
        ("outputs", graph.outputs, session.get_outputs()),
    ):
        expected = sorted(spec.name for spec in specs)
        found = sorted(arg.name for arg in actual)
        if expected != found:
            raise BundleError(
                f"{file}: graph {what} {found} do not match the manifest's {expected}"
            )
    declared = {value.name: value.type for value in (*model.graph.input, *model.graph.output)}
    for what, specs in (("input", graph.inputs), ("output", graph.outputs)):
        for spec in specs:
            problem = _type_mismatch(spec, declared.get(spec.name), what == "input")
            if problem:
                raise BundleError(
                    f"{file}: graph {what} {spec.name!r} {problem}; the bundle does not match "
                    "its manifest"
                )


def _type_mismatch(spec: TensorSpec, declared: Any, is_input: bool) -> str:
    """How the graph's declared type of one tensor differs from ``spec``
    ("" where it does not, or where the graph declares nothing)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    if declared is None:
        return ""
    if not declared.HasField("tensor_type"):
        return "is not a tensor"
    tensor = declared.tensor_type
    try:
        dtype = np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type))
    except (KeyError, TypeError, ValueError):  # an element type numpy does not have
        dtype = None
    if dtype != np.dtype(spec.dtype):
        return f"is of type {dtype or tensor.elem_type}, the manifest says {spec.dtype}"
    if not tensor.HasField("shape"):
        return ""
    dims = [d.dim_value if d.dim_value > 0 else None for d in tensor.shape.dim]
    if len(dims) != spec.rank:
        return f"has rank {len(dims)}, the manifest says {spec.rank} {describe_shape(spec.shape)}"
    for axis, (dim, want) in enumerate(zip(dims, spec.shape, strict=True)):
        fixed_elsewhere = isinstance(want, int) and dim is not None and dim != want
        fixed_here = is_input and isinstance(want, str) and dim is not None
        if fixed_elsewhere or fixed_here:
            shape = describe_shape(spec.shape)
            return f"has size {dim} on axis {axis}, the manifest says {want} {shape}"
    return ""
