"""The ONNX opsets a bundle can be written at: tf2onnx 1.17's range.

Kept apart from the converter so that the command line can offer them
without importing onnx or TensorFlow.
"""

from __future__ import annotations

from parity.runtime.errors import ParityError

SUPPORTED_OPSETS = range(14, 19)
DEFAULT_OPSET = 17


def check_opset(opset: int) -> int:
    """``opset`` when it is in :data:`SUPPORTED_OPSETS`.

    Args:
        opset: the ONNX opset asked for.

    Raises:
        ParityError: an opset outside the range, in words.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ParityError(
            f"opset {opset} is not supported (supported: {SUPPORTED_OPSETS.start} to "
            f"{SUPPORTED_OPSETS.stop - 1})"
        )
    return opset
