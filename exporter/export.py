"""Exporting a Keras model to a bundle: one graph, or encoder and step for a seq2seq model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.exporter.bundle_writer import check_out_dir, placeholder_graph, write_bundle
from parity.exporter.convert import (
    DEFAULT_OPSET,
    ConvertedGraph,
    check_opset,
    keras_to_onnx,
    simplified_graph,
)
from parity.exporter.custom_objects import CustomObjects
from parity.exporter.fused import FusedGraph, NotFused, fuse_recurrent
from parity.exporter.golden_data import golden_data, golden_mismatch
from parity.exporter.keras_graph import all_layers, as_functional, is_recurrent
from parity.exporter.load import load_keras, source_info
from parity.exporter.rewrite import needs_repair
from parity.exporter.saved_model import NOTE as SAVED_MODEL_NOTE
from parity.exporter.saved_model import is_wrapped_saved_model
from parity.exporter.seq2seq_bundle import export_seq2seq, is_seq2seq
from parity.exporter.signature import find_mask
from parity.exporter.split import split_seq2seq
from parity.exporter.stream_bundle import export_stream
from parity.exporter.stream_plan import is_stateful
from parity.runtime.bundle_format.manifest import FORMAT_VERSION, GraphSpec, Manifest, MaskSpec
from parity.runtime.errors import ParameterError, ParityError
from parity.runtime.paths import as_path
from parity.runtime.progress import Progress, silent
from parity.runtime.versions import tool_versions

GRAPH_KEY = "model"
GRAPH_FILE = "model.onnx"


def export_keras(
    src: str | Path,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    unsafe: bool = False,
    seq2seq: bool | None = None,
    steps: int | None = None,
    seed: int = 0,
    fuse: bool = True,
    custom_objects: CustomObjects = None,
    streaming: bool = False,
    progress: Progress = silent,
) -> Manifest:
    """Load the saved model ``src`` (safely) and export it to the bundle ``out_dir``.

    Args:
        src: a ``.keras`` or legacy ``.h5``/``.hdf5`` file, or a TensorFlow
            SavedModel folder (see :func:`parity.exporter.load.load_keras`).
        out_dir: the bundle folder to write: missing, empty, or a bundle (then
            replaced whole); any other folder, or one that holds ``src``, is
            refused before the model is loaded.
        opset: the ONNX opset (14 to 18, tf2onnx 1.17's range).
        dynamic_batch: keep the batch axis dynamic (True) or fix it to 1.
        unsafe: allow a model that needs unsafe deserialization (a ``Lambda``
            runs Python code when loaded); only for files you trust.
        seq2seq: export as encoder, step and loop graphs (True), as one graph
            (False), or as detected (None).
        steps: the generation horizon to record for a seq2seq model (default:
            the decoder input's fixed length).
        seed: the seed of the golden-data inputs.
        fuse: write recurrent layers as ONNX's fused ops where the model's
            form allows (False keeps tf2onnx's general graph).
        custom_objects: the model's own classes and functions: a mapping of
            names to them, or a Python file that defines them (trusted code).
        streaming: export a stateless forward recurrent model as a stream
            (:mod:`parity.exporter.stream_bundle`); a model whose recurrent
            layers are stateful is exported as one without it.
        progress: hears one line as each stage starts (fusing, converting,
            simplifying, golden data, writing), and once the model is loaded.

    Returns:
        The manifest as written.

    Raises:
        ParityError: a file, model or option that cannot be exported, with one
            line that says why; nothing is written then.
    """
    check_opset(opset)
    src = as_path(src)
    check_out_dir(out_dir, source=src)
    model = load_keras(src, unsafe=unsafe, custom_objects=custom_objects)
    progress(f"loaded {src}")
    return export_model(
        model,
        out_dir,
        source=source_info(src, model),
        opset=opset,
        dynamic_batch=dynamic_batch,
        seq2seq=seq2seq,
        steps=steps,
        seed=seed,
        fuse=fuse,
        streaming=streaming,
        progress=progress,
    )


def export_model(
    model: Any,
    out_dir: str | Path,
    *,
    source: Mapping[str, str] | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    seq2seq: bool | None = None,
    steps: int | None = None,
    seed: int = 0,
    fuse: bool = True,
    streaming: bool = False,
    progress: Progress = silent,
) -> Manifest:
    """Export an in-memory Keras model to the bundle ``out_dir``. A seq2seq model
    (detected, or forced with ``seq2seq=True``) becomes an encoder, a one-step
    decoder and a generation graph; a stateful model (or any forward
    recurrent model with ``streaming``) a stream graph.

    Args:
        model: a functional or ``Sequential`` Keras model.
        out_dir: as for :func:`export_keras`.
        source: what the manifest records of the model's file (name, file,
            sha256); the model's name alone when omitted.
        opset, dynamic_batch, seq2seq, steps, seed, fuse, streaming, progress: as for
            :func:`export_keras`.

    Returns:
        The manifest as written.
    """

    check_opset(opset)
    model = as_functional(model)
    source = dict(source or {"name": model.name, "file": "", "sha256": ""})
    if streaming or is_stateful(model):
        if seq2seq:
            raise ParameterError("seq2seq", "a stream bundle is one graph, never split")
        if steps is not None:
            raise ParameterError("steps", "applies to seq2seq models only")
        if not dynamic_batch:
            raise ParameterError("dynamic_batch", "a stream bundle keeps its batch axis dynamic")
        return export_stream(
            model, Path(out_dir), source=source, streaming=streaming, opset=opset, fuse=fuse,
            seed=seed, progress=progress,
        )  # fmt: skip
    saved_model = is_wrapped_saved_model(model)
    if seq2seq and saved_model:
        raise ParityError(
            "a SavedModel has no Keras layers to split into encoder and step graphs; export "
            "the Keras model itself (.keras or .h5) for a seq2seq bundle"
        )
    split, not_split = None, None
    if seq2seq is not False and not saved_model and (seq2seq or is_seq2seq(model)):
        try:
            split = split_seq2seq(model)
        except ParityError as exc:
            if seq2seq:
                raise ParityError(f"{exc}; export it as one graph with --no-seq2seq") from None
            not_split = (
                f"not split into seq2seq graphs (encoder, step, loop) although it reads like "
                f"one: {exc}; exported as one graph"
            )
    if split is not None:
        if not dynamic_batch:
            raise ParityError("a seq2seq bundle keeps its batch axis dynamic")
        return export_seq2seq(
            model,
            Path(out_dir),
            source_info=source,
            opset=opset,
            steps=steps,
            split=split,
            progress=progress,
        )
    if steps is not None:
        raise ParameterError("steps", "applies to seq2seq models only")
    mask = find_mask(model)
    fused = NotFused("fusion is off (fuse=False, --no-fuse)")
    if not dynamic_batch:
        fused = NotFused("the batch axis is fixed")
    elif fuse:
        progress("fusing recurrent layers into ONNX's recurrent ops")
        fused = fuse_recurrent(model, mask, opset=opset)
    written = _written_graph(model, fused, mask, opset, dynamic_batch, seed, progress)
    if isinstance(fused, FusedGraph):
        wrong = golden_mismatch(written.converted.proto, GRAPH_KEY, written.graph, written.golden)
        if wrong is not None:  # keep tf2onnx's graph
            fused = NotFused(f"the fused graph strayed from Keras on the golden inputs: {wrong}")
            written = _written_graph(model, fused, mask, opset, dynamic_batch, seed, progress)
    converted, graph, golden, mask = written.converted, written.graph, written.golden, written.mask
    notes = [SAVED_MODEL_NOTE] if saved_model else []
    if not_split:
        notes.append(not_split)
    if written.unsimplified:
        notes.append(written.unsimplified)
    if needs_repair(model):
        notes.append(
            "TimeDistributed layers were folded into the batch axis before conversion "
            "(Keras 3 traces them wrong over a dynamic time axis)"
        )
    if isinstance(fused, FusedGraph):
        notes.extend(fused.notes())
    elif mask is None and any(map(is_recurrent, all_layers(model))):
        notes.append(
            "the recurrent layers are tf2onnx's graph (plain LSTMs as LSTM ops, others as "
            f"Loops): not fused because {fused.reason}"
        )
    if mask is not None and mask.fused:
        notes.append(
            f"input {mask.input!r} is masked ({mask.source}, value {mask.value}): the fused op "
            "gets sequence lengths from the mask; inputs must be post-padded "
            "(the runtime refuses a real step after a padded one)"
        )
    elif mask is not None:
        notes.append(
            f"input {mask.input!r} is masked ({mask.source}, value {mask.value}): the graph is "
            "tf2onnx's general masked graph (a Loop), valid for post- and pre-padding; not "
            f"fused because {fused.reason} (the fused op needs Input -> Masking or "
            "Embedding(mask_zero) -> one LSTM, GRU or SimpleRNN from zeros -> Dense layers)"
        )
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name=source.get("name") or model.name,
        kind="single",
        source=source,
        opset=opset,
        versions=tool_versions(),
        graphs={GRAPH_KEY: graph},
        mask=mask,
        notes=tuple(notes),
    )
    progress(f"writing {out_dir}")
    return write_bundle(
        Path(out_dir), manifest, {GRAPH_KEY: converted.proto.SerializeToString()}, golden
    )


@dataclass(frozen=True)
class _Written:
    """A single graph as export writes it: simplified, its spec, its golden
    data and the mask it was made for; ``unsimplified`` says why the
    simplifier could not take it (else ``None``)."""

    converted: ConvertedGraph
    unsimplified: str | None
    graph: GraphSpec
    golden: dict[str, Any]
    mask: MaskSpec | None


def _written_graph(
    model: Any,
    fused: FusedGraph | NotFused,
    mask: MaskSpec | None,
    opset: int,
    dynamic_batch: bool,
    seed: int,
    progress: Progress,
) -> _Written:
    """``fused``'s graph, or tf2onnx's when ``fused`` is ``NotFused``, ready to write."""
    if isinstance(fused, FusedGraph):
        converted = fused.converted
        if mask is not None:
            mask = dataclasses.replace(mask, padding="post", fused=True)
    else:
        progress("converting with tf2onnx")
        converted = keras_to_onnx(model, opset=opset, dynamic_batch=dynamic_batch)
    progress("simplifying with onnx-simplifier")
    converted, unsimplified = simplified_graph(converted)
    graph = placeholder_graph(GRAPH_FILE, converted.inputs, converted.outputs)
    progress("golden data: TensorFlow's outputs on drawn inputs")
    golden = golden_data(model, GRAPH_KEY, graph, mask, seed=seed)
    return _Written(converted, unsimplified, graph, golden, mask)
