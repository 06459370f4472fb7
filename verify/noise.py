"""TensorFlow's reference in float64: what rounding alone does to a model.

The same Keras model is rebuilt with every layer computing in float64 and the
trained float32 weights cast up (exactly). Its outputs are the "exact" answer
for the given inputs; TensorFlow's float32 error against them is the model's
own numerical noise, and ONNX Runtime is held to a multiple of it
(:mod:`verify.tolerance`). Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

from parity.exporter.keras_graph import rebuilt
from parity.runtime.errors import quoted


def float64_model(model: Any) -> tuple[Any | None, str]:
    """The model rebuilt in float64 with the same weights, or None and the reason.

    Every layer's dtype policy becomes float64 (nested layers of wrappers such
    as ``TimeDistributed`` and ``Bidirectional`` too); float inputs become
    float64 inputs, integer inputs (token ids) stay as they are. The weights
    are the trained ones cast up, and a layer with adapted state (an adapted
    ``Normalization``) normalizes by them (:func:`parity.exporter.keras_graph.rebuilt`).

    Args:
        model: a functional Keras model.
    """

    def replace(layer: Any) -> Any:
        return layer.__class__.from_config(_float64_config(layer.get_config()))

    try:
        copy = rebuilt(model, replace, float_inputs="float64")
    except Exception as exc:  # Keras raises many types for a layer it cannot rebuild
        reason = quoted(exc, 200)
        return None, f"the model cannot be rebuilt in float64 ({reason})"
    narrow = [(v.path, v.dtype) for v in copy.weights
              if "float" in str(v.dtype) and v.dtype != "float64"]  # fmt: skip
    if narrow:
        return None, f"weight {narrow[0][0]!r} stays {narrow[0][1]} in the float64 rebuild"
    return copy, ""


def _float64_config(config: Any) -> Any:
    """A layer config with every dtype policy set to float64, nested ones too."""
    if isinstance(config, dict):
        changed = {key: _float64_config(value) for key, value in config.items()}
        if "dtype" in config and _is_float_policy(config["dtype"]):
            changed["dtype"] = "float64"
        return changed
    if isinstance(config, list):
        return [_float64_config(item) for item in config]
    return config


def _is_float_policy(dtype: Any) -> bool:
    name = dtype.get("config", {}).get("name", "") if isinstance(dtype, dict) else dtype
    return "float" in str(name or "")


def float64_split(split: Any) -> tuple[Any | None, str]:
    """A seq2seq split (:class:`parity.exporter.split.Seq2SeqSplit`) whose encoder
    and step models compute in float64, or None and the reason.

    Args:
        split: the float32 split of the trained model.
    """
    import dataclasses

    encoder, reason = float64_model(split.encoder)
    if encoder is None:
        return None, reason
    step, reason = float64_model(split.step)
    if step is None:
        return None, reason
    return dataclasses.replace(split, encoder=encoder, step=step), ""
