"""What the fused recurrent ops gain over tf2onnx's general graph.

The masked zoo classifier (``Masking -> LSTM -> Dense``) and the same model
with a GRU or a SimpleRNN in the LSTM's place are each exported twice: as
parity exports them (the layer as ONNX's fused ``LSTM``/``GRU`` op, or the
``RNN`` op written as a ``Scan``, with sequence lengths from the mask) and as
tf2onnx alone converts them
(``parity export --no-fuse``: a general ``Loop``). ONNX Runtime runs both on
the same post-padded batch; the outputs must agree, so the two rows differ
only in the graph; XLA's row is TensorFlow's fastest run of the same model.
Rows have the masked zoo rows' lengths (:func:`bench.cases.masked_sample`).
Models are untrained, like the rest of the benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.bench.cases import BATCHES, TF_XLA, Case, _fit, _join, _time_ways, masked_sample
from parity.bench.flops import activation_bytes, count_flops, recurrent_gemms
from parity.bench.result import CPU, Row, Settings

LAYERS = ("LSTM", "GRU", "SimpleRNN")
ORT_FUSED = "onnxruntime parity graph"
ORT_GENERAL = "onnxruntime tf2onnx Loop"


def fusion_case(settings: Settings, folder: Path) -> Case:
    """Rows of both graphs of each layer kind, on the CPU, at the preset's batches."""
    import keras

    from parity import models

    dims = models.get("masked_lstm").preset(settings.preset).dims
    rows, gemms = [], []
    for kind in LAYERS:
        model = masked_classifier(kind, dims)
        bundles = _export_both(model, folder / kind)
        for asked in settings.batches or BATCHES[settings.preset]:
            batch, note = _fit(asked, activation_bytes(model, dims["steps"]))
            gemms += recurrent_gemms(model, batch)
            rows += _rows(model, bundles, batch, note, settings)
        keras.backend.clear_session()
    return Case(tuple(rows), tuple(gemms))


def masked_classifier(kind: str, dims: dict[str, Any]) -> Any:
    """``masked_lstm``'s architecture with a ``kind`` layer (``LSTM``, ``GRU``,
    ``SimpleRNN``) of the same width and dropout."""
    import keras

    sequence = keras.Input((dims["steps"], dims["features"]), name="sequence")
    x = keras.layers.Masking(mask_value=0.0)(sequence)
    layer = getattr(keras.layers, kind)
    x = layer(dims["units"], dropout=dims["dropout"], recurrent_dropout=dims["dropout"])(x)
    probs = keras.layers.Dense(dims["classes"], activation="softmax", name="probs")(x)
    return keras.Model(sequence, probs, name=f"masked_{kind.lower()}")


def _export_both(model: Any, folder: Path) -> dict[str, tuple[Any, Any]]:
    """Method -> (manifest, CPU bundle) for parity's export and tf2onnx's own."""
    from parity import runtime
    from parity.exporter import export_model

    bundles = {}
    for method, fuse in ((ORT_FUSED, True), (ORT_GENERAL, False)):
        path = folder / ("fused" if fuse else "general")
        manifest = export_model(model, path, fuse=fuse)
        bundles[method] = (manifest, runtime.load_bundle(path, device="cpu"))
    return bundles


def _rows(model: Any, bundles: dict, batch: int, note: str, settings: Settings) -> list[Row]:
    from parity.bench.xla import xla_call

    manifest, _ = bundles[ORT_FUSED]
    (graph,) = manifest.graphs.values()
    sample = masked_sample(graph.inputs, batch, None, manifest.mask)
    flops = count_flops(model, batch)
    ways = {
        method: lambda b=bundle: next(iter(b.run(sample).values()))
        for method, (_, bundle) in bundles.items()
    }
    ways[TF_XLA] = lambda: xla_call(model, [sample[graph.inputs[0].name]])
    timed = _time_ways(ways, (*bundles, TF_XLA), settings, builders=(TF_XLA,))
    return [
        Row(model.name, batch, CPU, method, timing, flops, _join(note, remark))
        for method, (timing, remark) in timed.items()
    ]
