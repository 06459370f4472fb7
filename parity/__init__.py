"""parity: export recurrent Keras models to ONNX and prove ONNX Runtime agrees with TensorFlow.

The subpackages (``parity.models``, ``parity.exporter``, ``parity.runtime``,
``parity.verify``, ``parity.bench``) live in the repository's top-level
folders; an installed wheel holds them inside this package (pyproject's
``package-dir``). In a source checkout, where this folder can be imported
straight from the repository root (``python -m pytest`` puts the root on
``sys.path``), the root joins this package's search path so that
``parity.runtime`` is the ``runtime/`` folder beside this one.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "runtime" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))

try:
    __version__ = version("parity")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
