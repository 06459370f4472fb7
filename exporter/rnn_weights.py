"""Keras 3 recurrent layers as ONNX's fused ``LSTM``, ``GRU`` and ``RNN`` ops.

The ONNX ops compute the same cells as Keras with the weights laid out
differently; this module is that layout, and the list of what matches:

- LSTM: Keras orders the gates ``i, f, c, o``, ONNX ``i, o, f, c``; ONNX's
  activations are ``(f, g, h) = (recurrent_activation, activation, activation)``.
- GRU: both order the gates ``z, r, h``; Keras' ``reset_after=True`` (the
  reset gate applied after the recurrent matmul, two bias vectors) is ONNX's
  ``linear_before_reset=1``; ``reset_after=False`` is ``linear_before_reset=0``
  with a zero recurrent bias.
- SimpleRNN: ``activation(x W + b + h U)``, ONNX's ``RNN``.

ONNX holds ``W`` as ``[directions, gates * units, input]``, the transpose of
Keras' ``kernel``, and one bias row ``[Wb, Rb]``. Activations are the ones
both sides define the same way; Keras 3's ``hard_sigmoid`` is
``clip(x / 6 + 0.5, 0, 1)``, ONNX's ``HardSigmoid`` with alpha 1/6, beta 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Keras activation name -> (ONNX activation, alpha, beta); alpha/beta None: none taken
ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
}

LAYERS = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}

# Keras' LSTM gate blocks i, f, c, o taken in ONNX's order i, o, f, c
_LSTM_ORDER = (0, 3, 1, 2)


@dataclass(frozen=True)
class FusedOp:
    """One Keras recurrent layer as an ONNX op: its type, attributes and the
    ``W``, ``R``, ``B`` inputs (float32, one direction)."""

    op_type: str
    attributes: dict[str, Any]
    weights: np.ndarray
    recurrence: np.ndarray
    bias: np.ndarray


def unsupported(layer: Any) -> str | None:
    """Why ``layer``'s cell has no fused ONNX equivalent, or ``None`` when it has."""
    kind = type(layer).__name__
    if kind not in LAYERS:
        return f"{kind} is not one of {', '.join(LAYERS)}"
    config = layer.get_config()
    names = ["activation"] + (["recurrent_activation"] if kind != "SimpleRNN" else [])
    for name in names:
        if not isinstance(config[name], str) or config[name] not in ACTIVATIONS:
            return f"{name} {config[name]!r} has no ONNX equivalent here"
    return None


def fused_op(layer: Any) -> FusedOp:
    """``layer`` (a built Keras LSTM, GRU or SimpleRNN that ``unsupported``
    accepts) as the ONNX op that computes it."""
    kind = type(layer).__name__
    cell = layer.cell
    units = int(cell.units)
    kernel = np.asarray(cell.kernel, np.float32)
    recurrent = np.asarray(cell.recurrent_kernel, np.float32)
    gates = kernel.shape[1] // units
    bias = np.asarray(cell.bias, np.float32) if cell.use_bias else None
    config = layer.get_config()
    if kind == "LSTM":
        kernel, recurrent = _reorder(kernel, units), _reorder(recurrent, units)
        bias = None if bias is None else _reorder(bias[None], units)[0]
        activations = [config["recurrent_activation"], config["activation"], config["activation"]]
    elif kind == "GRU":
        activations = [config["recurrent_activation"], config["activation"]]
    else:
        activations = [config["activation"]]
    if bias is None:
        bias = np.zeros(2 * gates * units, np.float32)
    elif bias.ndim == 2:  # GRU(reset_after=True): input and recurrent bias rows
        bias = bias.reshape(-1)
    else:
        bias = np.concatenate([bias, np.zeros_like(bias)])
    attributes: dict[str, Any] = {"hidden_size": units, "direction": "forward"}
    attributes.update(_activation_attributes(activations))
    if kind == "GRU":
        attributes["linear_before_reset"] = int(bool(cell.reset_after))
    return FusedOp(
        LAYERS[kind], attributes, kernel.T[None].copy(), recurrent.T[None].copy(), bias[None]
    )


def _reorder(matrix: np.ndarray, units: int) -> np.ndarray:
    blocks = [matrix[:, k * units : (k + 1) * units] for k in _LSTM_ORDER]
    return np.concatenate(blocks, axis=1)


def _activation_attributes(names: list[str]) -> dict[str, Any]:
    """``activations``, and ``activation_alpha``/``_beta`` in the order of the
    activations that take them (how ONNX consumes them)."""
    found = [ACTIVATIONS[name] for name in names]
    attributes: dict[str, Any] = {"activations": [onnx_name for onnx_name, _, _ in found]}
    alphas = [alpha for _, alpha, _ in found if alpha is not None]
    betas = [beta for _, _, beta in found if beta is not None]
    if alphas:
        attributes["activation_alpha"] = alphas
        attributes["activation_beta"] = betas
    return attributes
