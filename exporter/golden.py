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
from parity.runtime.bundle_format.golden import draw_name, input_key, output_key
from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec
from parity.runtime.sampling import sample_inputs

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
