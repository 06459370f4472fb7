"""Golden data for a single-graph bundle: inputs and TensorFlow's outputs.

Stored in the bundle so that a machine without TensorFlow can check it later.
The inputs are drawn by the same rules verification uses (value domains,
variable lengths for a masked input); the outputs come from calling the
original Keras model eagerly, which is TensorFlow's own answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.exporter.keras_io import keras_outputs
from parity.runtime.bundle_format.golden import draw_name, golden_draws, input_key, output_key
from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec
from parity.runtime.comparison import compare_elements
from parity.runtime.sampling import sample_inputs

# How far a rewritten graph may stray from Keras on the golden inputs before
# export gives it up: ten times verification's fallback rule, so it flags a
# wrong graph, not rounding (verification judges the rest).
REWRITE_ATOL, REWRITE_RTOL = 1e-4, 1e-3

# Two draws: an odd batch at one length, and a batch longer than its time
# axis, so that batch and time cannot be confused.
DRAWS = ((3, 6), (9, 4))


def golden_data(
    model: Any, key: str, graph: GraphSpec, mask: MaskSpec | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs and outputs of the first draw of graph ``key``, and of a second
    draw where the time axis is dynamic (keys: :mod:`parity.runtime.bundle_format.golden`)."""
    golden: dict[str, np.ndarray] = {}
    dynamic_time = any(spec.shape[1:2] == ("time",) for spec in graph.inputs)
    draws = DRAWS if dynamic_time else DRAWS[:1]
    for index, (batch, time) in enumerate(draws):
        draw = draw_name(key, index)
        sample = sample_inputs(graph.inputs, batch, time=time, seed=seed + index, mask=mask)
        outputs = keras_outputs(model, sample.inputs)
        golden.update({input_key(draw, n): v for n, v in sample.inputs.items()})
        golden.update({output_key(draw, n): v for n, v in outputs.items()})
    return golden


def golden_mismatch(
    proto: Any, key: str, graph: GraphSpec, golden: dict[str, np.ndarray]
) -> str | None:
    """Where ONNX Runtime's outputs of ``proto`` on the golden inputs of graph
    ``key`` stray from Keras' beyond ``REWRITE_ATOL``/``REWRITE_RTOL``, in
    words, or ``None``. Export asks this of the graphs it rewrites (parity's
    fused recurrent layers): a copy that lost a layer's state gives a graph
    that converts and runs, and is wrong.

    Args:
        proto: the ONNX model.
        key: the graph's key in ``golden``.
        graph: the graph's inputs and outputs.
        golden: :func:`golden_data`'s arrays.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [spec.name for spec in graph.outputs]
    for draw, _ in golden_draws(golden, {key: graph}):
        feeds = {spec.name: golden[input_key(draw, spec.name)] for spec in graph.inputs}
        for name, actual in zip(names, session.run(names, feeds), strict=True):
            expected = golden[output_key(draw, name)]
            if actual.shape != expected.shape:
                return f"output {name!r} of draw {draw!r} has shape {actual.shape}"
            elements = compare_elements(expected, actual, REWRITE_ATOL, REWRITE_RTOL)
            if not elements.passed:
                worst = float(elements.error.max())
                return f"output {name!r} of draw {draw!r} is off by up to {worst:.3g}"
    return None
