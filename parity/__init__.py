"""parity: export recurrent Keras models to ONNX and prove ONNX Runtime agrees with TensorFlow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parity")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
