"""What the manifest says about a model's inputs beyond their shapes: the
values that make sense for each, and which input is masked by what.

Verification draws inputs from these (token ids inside the vocabulary,
images in [0, 1], padded steps equal to the mask value), so a check runs on
inputs the model could really see.
"""

from __future__ import annotations

from typing import Any

from parity.exporter.keras_graph import calls, layer_name
from parity.runtime.bundle_format.manifest import MaskSpec

IMAGE_DOMAIN = {"kind": "uniform", "low": 0.0, "high": 1.0}
SIGNED_DOMAIN = {"kind": "uniform", "low": -1.0, "high": 1.0}


def input_domain(model: Any, tensor: Any) -> dict[str, Any]:
    """Token ids for an input that feeds an ``Embedding`` (or is integer),
    [0, 1] for image-like inputs (rank 4 or 5), [-1, 1] otherwise."""
    embedding = _first_consumer(model, tensor, "Embedding")
    if embedding is not None:
        return {"kind": "tokens", "vocab": int(embedding.input_dim)}
    if "int" in str(tensor.dtype):  # integers of no known vocabulary: small, non-negative
        return {"kind": "uniform", "low": 0.0, "high": 1.0}
    if len(tensor.shape) in (4, 5):
        return dict(IMAGE_DOMAIN)
    return dict(SIGNED_DOMAIN)


def find_mask(model: Any) -> MaskSpec | None:
    """The mask of a model whose ``Masking`` layer, or ``Embedding`` with
    ``mask_zero``, reads a model input directly."""
    for tensor in model.inputs:
        masking = _first_consumer(model, tensor, "Masking")
        if masking is not None:
            value = float(masking.mask_value)
            return MaskSpec(input=layer_name(tensor), value=value, source="Masking")
        embedding = _first_consumer(model, tensor, "Embedding")
        if embedding is not None and embedding.mask_zero:
            return MaskSpec(input=layer_name(tensor), value=0.0, source="Embedding")
    return None


def _first_consumer(model: Any, tensor: Any, class_name: str) -> Any:
    """The layer of class ``class_name`` that reads ``tensor`` directly, if any."""
    for layer in getattr(model, "layers", ()):
        if type(layer).__name__ != class_name:
            continue
        for call in calls(layer, model):
            if any(value is tensor for value in call.inputs):
                return layer
    return None
