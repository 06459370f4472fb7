"""Loading a ``.keras`` file that the user may not have made: safely, with
errors that say what is wrong with the file, and within memory limits.

Keras builds every layer (and initialises its weights) before it reads a
single weight, so a 24 KB file declaring ``LSTM(units=20000)`` takes tens of
gigabytes to load. Before Keras sees the file, the archive's declared sizes
and its ``config.json`` (read as JSON, without Keras) are checked against:

- :data:`MAX_CONFIG_BYTES` (64 MiB): the uncompressed ``config.json``; a real
  model's is a few hundred KB. Not raisable.
- :data:`MAX_MODEL_BYTES` (4 GiB): the weights the config declares (counted
  from each layer's ``units``, ``filters``, ``kernel_size``, ``input_dim`` x
  ``output_dim`` and input width, see :func:`declared_weights`); loading takes
  a few times this in memory while Keras initialises the layers. The whole
  archive, uncompressed, may take :data:`ARCHIVE_FACTOR` times this limit.
  Set the environment variable ``PARITY_MAX_MODEL_BYTES`` (a number of bytes)
  to raise both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from parity.runtime.errors import ParityError
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.paths import as_path

MAX_CONFIG_BYTES = 64 * 2**20
MAX_MODEL_BYTES = 4 * 2**30
MAX_MODEL_BYTES_VARIABLE = "PARITY_MAX_MODEL_BYTES"
ARCHIVE_FACTOR = 2
CONFIG_NAME = "config.json"


def load_keras(path: str | os.PathLike[str], *, unsafe: bool = False) -> Any:
    """Load a Keras 3 model with ``safe_mode`` on unless ``unsafe``: a model
    with a ``Lambda`` layer (it runs arbitrary code when loaded) is refused
    with a message naming ``--unsafe``. A file beyond the module's limits is
    refused before Keras reads it."""
    path = as_path(path)
    if not path.exists():
        raise ParityError(f"{path}: no such file")
    if path.is_dir():
        raise ParityError(f"{path}: is a folder, expected a .keras file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if not zipfile.is_zipfile(path):
        raise ParityError(f"{path}: not a Keras 3 model file (.keras is a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            config = _checked_config(path, archive)
            bad = archive.testzip()
            if bad is not None:
                raise ParityError(f"{path}: corrupt archive (member {bad!r} is damaged)")
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
        raise ParityError(f"{path}: corrupt archive ({exc})") from None
    import keras

    from parity import models  # noqa: F401  (the zoo's layers, should it register any)

    try:
        return keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
    except Exception as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Keras' bold terminal escapes
        message = " ".join(text.split())[:300] or type(exc).__name__
        lambdas = [layer.name for layer in declared_layers(config) if layer.class_name == "Lambda"]
        refused = "safe_mode" in message or "unsafe" in message.lower()
        if lambdas and not unsafe and (refused or "lambda" in message.lower()):
            raise ParityError(
                f"{path}: the model needs unsafe deserialization (Lambda layer "
                f"{lambdas[0]!r} runs Python code when loaded); pass --unsafe only if you "
                "trust this file"
            ) from None
        raise ParityError(f"{path}: cannot load Keras model: {message}") from None


def _checked_config(path: Path, archive: zipfile.ZipFile) -> Any:
    """The parsed ``config.json`` of ``archive``, once its declared sizes and
    the weights it declares are within the module's limits."""
    members = archive.infolist()
    config_info = next((info for info in members if info.filename == CONFIG_NAME), None)
    if config_info is None:
        raise ParityError(f"{path}: not a Keras 3 model file (no config.json inside)")
    if config_info.file_size > MAX_CONFIG_BYTES:
        raise ParityError(
            f"{path}: config.json takes {describe_bytes(config_info.file_size)} uncompressed, "
            f"beyond the limit of {describe_bytes(MAX_CONFIG_BYTES)}"
        )
    limit = byte_limit(MAX_MODEL_BYTES_VARIABLE, MAX_MODEL_BYTES)
    total = sum(info.file_size for info in members)
    if total > ARCHIVE_FACTOR * limit:
        raise ParityError(
            f"{path}: the archive takes {describe_bytes(total)} uncompressed, beyond "
            f"{ARCHIVE_FACTOR} x the model limit of {describe_bytes(limit)} "
            f"(set {MAX_MODEL_BYTES_VARIABLE} to raise it)"
        )
    try:
        config = json.loads(archive.read(config_info))
    except (ValueError, RecursionError) as exc:
        reason = str(exc)[:200] or type(exc).__name__
        raise ParityError(f"{path}: config.json is not valid JSON ({reason})") from None
    layers = declared_layers(config)
    weights = sum(layer.weight_bytes for layer in layers)
    if weights > limit:
        largest = max(layers, key=lambda layer: layer.weight_bytes)
        raise ParityError(
            f"{path}: the model declares about {describe_bytes(weights)} of weights "
            f"({largest.class_name} {largest.name!r} alone {describe_bytes(largest.weight_bytes)}"
            f"), beyond the limit of {describe_bytes(limit)} "
            f"(set {MAX_MODEL_BYTES_VARIABLE} to raise it)"
        )
    return config


@dataclass(frozen=True)
class DeclaredLayer:
    """A layer found in a Keras config, with the bytes its weights would take."""

    class_name: str
    name: str
    weight_bytes: int


def declared_layers(config: Any) -> list[DeclaredLayer]:
    """Every layer (or cell) that ``config`` declares, at any depth (wrapped
    layers, cells of an ``RNN``), with an estimate of its weights' bytes.

    A layer's input width is the last dim of its ``build_config`` (Keras
    writes one for every built layer); where none is recorded, the widest
    width declared anywhere in the config stands in, so that the estimate
    errs high for a config that hides its widths."""
    nodes = list(_dicts(config))
    widest = max((_width_hint(node) for node in nodes), default=1)
    layers = []
    for node in nodes:
        class_name, settings = node.get("class_name"), node.get("config")
        if not isinstance(class_name, str) or not isinstance(settings, dict):
            continue
        width = _input_width(node) or widest
        count = _weight_count(class_name, settings, width)
        name = settings.get("name")
        layers.append(
            DeclaredLayer(class_name, str(name), count * _itemsize(settings.get("dtype")))
        )
    return layers


def _dicts(value: Any) -> list[dict]:
    """Every dict inside ``value``, without recursion (a config may nest deep)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _weight_count(class_name: str, config: dict, width: int) -> int:
    """The number of weights of one layer of ``class_name`` reading ``width``
    features (an upper bound for the layers whose options add weights)."""
    units, filters = _size(config.get("units")), _size(config.get("filters"))
    kernel = _kernel(config.get("kernel_size"))
    kind = class_name.removesuffix("Cell")
    if kind == "LSTM":
        return 4 * units * (width + units + 1)
    if kind == "GRU":
        return 3 * units * (width + units + 2)
    if kind == "SimpleRNN":
        return units * (width + units + 1)
    if kind.startswith("ConvLSTM"):
        return 4 * filters * (kernel * (width + filters) + 1)
    if kind.startswith("DepthwiseConv"):
        return kernel * width * (_size(config.get("depth_multiplier")) or 1) + width
    if "Conv" in kind:  # a separable one's depthwise kernel included
        return filters * (kernel * width + 1) + kernel * width
    if kind == "Embedding":
        return _size(config.get("input_dim")) * _size(config.get("output_dim"))
    if kind == "MultiHeadAttention":
        heads, key = _size(config.get("num_heads")), _size(config.get("key_dim"))
        value = _size(config.get("value_dim")) or key
        return heads * (2 * key + 2 * value) * (width + 1) + width
    if kind in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        return 4 * width
    return units * (width + 1)


def _input_width(node: dict) -> int:
    build = node.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    return _size(shape[-1]) if isinstance(shape, list) and shape else 0


def _width_hint(node: dict) -> int:
    """The widest width ``node`` declares itself: units, filters, an output
    width or the last dim of a shape."""
    hints = [_size(node.get(key)) for key in ("units", "filters", "output_dim")]
    for key in ("batch_shape", "input_shape", "shape"):
        shape = node.get(key)
        if isinstance(shape, list) and shape:
            hints.append(_size(shape[-1]))
    return max(hints)


def _size(value: Any) -> int:
    """A size from a config: a non-negative int, else 0 (Keras refuses it)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _kernel(value: Any) -> int:
    sizes = value if isinstance(value, list) else [value]
    return prod(_size(size) or 1 for size in sizes)


def _itemsize(dtype: Any) -> int:
    """Bytes per weight: 8 for a float64 layer, else 4 (float32 variables,
    also under mixed precision). ``dtype`` is a name or a DTypePolicy's config."""
    if isinstance(dtype, dict):
        dtype = dtype.get("config")
        dtype = dtype.get("name") if isinstance(dtype, dict) else None
    return 8 if isinstance(dtype, str) and dtype.endswith("float64") else 4


def source_info(path: Path, model: Any) -> dict[str, str]:
    """What the manifest records about the model a bundle came from."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"name": model.name, "file": Path(path).name, "sha256": digest}
