"""parity: export recurrent Keras models to ONNX and prove ONNX Runtime agrees with TensorFlow.

Every top-level folder ``X/`` of the repository is the subpackage
``parity.X`` (``parity.runtime``, ``parity.exporter``, ``parity.verify``,
``parity.models``, ``parity.bench``, ``parity.files``, ``parity.cli``):
pyproject's ``package-dir`` maps each into this package, for wheels and
editable installs alike. This folder holds only the package root.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parity")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+source"
