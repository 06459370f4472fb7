"""Golden data in ONNX's standard test-data layout, for apps in any language.

``golden.npz`` is easy to read from Python; an app in JavaScript, C# or C++
reads protobuf. ONNX's own layout is a folder of serialized ``TensorProto``
files per run of a graph, which ONNX Runtime's test runner and every
language's protobuf library read::

    test_data/<graph>/test_data_set_<n>/input_<i>.pb    the graph's i-th input
    test_data/<graph>/test_data_set_<n>/output_<j>.pb   its j-th output

in the graph's own order of inputs and outputs, each tensor named as the
graph names it. A set holds what ``golden.npz`` holds for one draw of a
graph; a seq2seq bundle's whole generation is a set of its loop graph
(encoder inputs, ``start``, ``steps`` in; the generation out). The manifest
lists every file with its sha256 (``test_data``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from parity.runtime.bundle_format.golden import (
    GENERATION,
    START,
    golden_draws,
    input_key,
    output_key,
)
from parity.runtime.bundle_format.manifest import Manifest

FOLDER = "test_data"
STEPS = "steps"


def test_data_files(
    manifest: Manifest, graph_bytes: Mapping[str, bytes], golden: Mapping[str, np.ndarray]
) -> dict[str, bytes]:
    """Every test-data file of the bundle, by its path in the bundle.

    Args:
        manifest: the bundle's manifest (its graphs and seq2seq section).
        graph_bytes: each graph's serialized model, keyed as ``manifest.graphs``.
        golden: the golden arrays (keys of :mod:`parity.runtime.bundle_format.golden`).
    """
    order = {key: _signature(data) for key, data in graph_bytes.items()}
    sets: dict[str, list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]] = {}
    for draw, key in golden_draws(golden, manifest.graphs):
        inputs = {name: golden[input_key(draw, name)] for name in order[key][0]}
        outputs = {
            name: golden[output_key(draw, name)]
            for name in order[key][1]
            if output_key(draw, name) in golden
        }
        sets.setdefault(key, []).append((inputs, outputs))
    spec = manifest.seq2seq
    if spec is not None and spec.loop_graph in order and input_key(GENERATION, START) in golden:
        generation = golden[output_key(GENERATION, spec.step_output)]
        inputs = {
            name: golden[input_key(GENERATION, name)]
            for name in order[spec.loop_graph][0]
            if name != STEPS
        }
        inputs[STEPS] = np.array(generation.shape[1], np.int64)
        sets[spec.loop_graph] = [(inputs, {spec.step_output: generation})]
    files = {}
    for key, runs in sets.items():
        for index, (inputs, outputs) in enumerate(runs):
            folder = f"{FOLDER}/{key}/test_data_set_{index}"
            for kind, arrays, names in (
                ("input", inputs, order[key][0]),
                ("output", outputs, order[key][1]),
            ):
                for position, name in enumerate(names):
                    if name in arrays:
                        tensor = numpy_helper.from_array(np.asarray(arrays[name]), name=name)
                        files[f"{folder}/{kind}_{position}.pb"] = tensor.SerializeToString()
    return files


def _signature(data: bytes) -> tuple[list[str], list[str]]:
    """The graph's input names (initializers left out) and output names, in order."""
    graph = onnx.ModelProto.FromString(data).graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in initializers]
    return inputs, [value.name for value in graph.output]
