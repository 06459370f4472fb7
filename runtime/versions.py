"""The installed versions of the tools a bundle or a report depends on."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

RUNTIME_TOOLS = ("parity", "numpy", "onnxruntime-gpu", "onnxruntime", "onnx")
TENSORFLOW_TOOLS = ("tensorflow", "keras", "tf2onnx")


def tool_versions(tensorflow: bool = True) -> dict[str, str]:
    """Versions of the installed tools, by distribution name; those not installed
    are left out.

    Args:
        tensorflow: include TensorFlow, Keras and tf2onnx (the exporting side);
            False for what ran with ONNX Runtime alone.
    """
    names = (*TENSORFLOW_TOOLS, *RUNTIME_TOOLS) if tensorflow else RUNTIME_TOOLS
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
