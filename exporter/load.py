"""Loading a Keras model that the user may not have made: safely, with
errors that say what is wrong with the file, and within memory limits.

Three forms load: Keras 3's ``.keras`` archive, the legacy HDF5 file
(``.h5``/``.hdf5``, Keras 2's ``model.save``; loaded by Keras 3's legacy
loader without compiling) and a TensorFlow SavedModel folder
(:mod:`parity.exporter.saved_model`).

Keras builds every layer (and initialises its weights) before it reads a
single weight, so a 24 KB file declaring ``LSTM(units=20000)`` takes tens of
gigabytes to load. Before Keras sees the file, the archive's declared sizes
and its ``config.json`` (an HDF5 file's datasets and its ``model_config``
attribute, read with h5py), read as JSON without Keras, are checked against:

- :data:`MAX_CONFIG_BYTES` (64 MiB): the uncompressed config; a real
  model's is a few hundred KB. Not raisable.
- :data:`MAX_MODEL_BYTES` (4 GiB): the weights the config declares (counted
  from each layer's ``units``, ``filters``, ``kernel_size``, ``input_dim`` x
  ``output_dim`` and input width, see :func:`declared_weights`); loading takes
  a few times this in memory while Keras initialises the layers. The whole
  archive, uncompressed (an HDF5 file's arrays, a SavedModel folder), may
  take :data:`ARCHIVE_FACTOR` times this limit.
  Set the environment variable ``PARITY_MAX_MODEL_BYTES`` (a number of bytes)
  to raise both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from parity.exporter.custom_objects import CustomObjects
from parity.exporter.custom_objects import custom_objects as custom_objects_of
from parity.runtime.bundle_format.digest import sha256_file
from parity.runtime.errors import ParityError, quoted
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.paths import as_path, regular_file

MAX_CONFIG_BYTES = 64 * 2**20
MAX_MODEL_BYTES = 4 * 2**30
MAX_MODEL_BYTES_VARIABLE = "PARITY_MAX_MODEL_BYTES"
ARCHIVE_FACTOR = 2
CONFIG_NAME = "config.json"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_keras(
    path: str | os.PathLike[str], *, unsafe: bool = False, custom_objects: CustomObjects = None
) -> Any:
    """Load a Keras model: a Keras 3 ``.keras`` file, a legacy HDF5 file
    (``.h5``/``.hdf5``) or a TensorFlow SavedModel folder (its serving
    signature, see :mod:`parity.exporter.saved_model`).

    Keras files load with ``safe_mode`` on unless ``unsafe``: a model with a
    ``Lambda`` layer (it runs arbitrary code when loaded) is refused with a
    message naming ``--unsafe``. A file beyond the module's limits is refused
    before Keras reads it.

    Args:
        path: the model file or SavedModel folder.
        unsafe: allow ``Lambda`` layers (and SavedModel graphs that touch files).
        custom_objects: the model's own classes and functions: a mapping of
            names to them, or a Python file that defines them (trusted code,
            run here; :mod:`parity.exporter.custom_objects`).

    Raises:
        ParityError: a missing, unreadable, corrupt or oversized model, one
            that needs ``unsafe``, or one whose custom objects are missing.
    """
    objects = custom_objects_of(custom_objects)
    path = as_path(path)
    if not os.path.lexists(path):
        raise ParityError(f"{path}: no such file")
    if path.is_dir():
        from parity.exporter.saved_model import is_saved_model, load_saved_model

        if not is_saved_model(path):
            raise ParityError(
                f"{path}: is a folder without saved_model.pb, expected a .keras or .h5 file "
                "or a TensorFlow SavedModel folder"
            )
        return load_saved_model(
            path,
            unsafe=unsafe,
            limit_variable=MAX_MODEL_BYTES_VARIABLE,
            default_limit=ARCHIVE_FACTOR * MAX_MODEL_BYTES,
        )
    regular_file(path, "model file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise ParityError(f"{path}: unreadable ({exc.strerror})") from None
    if head != HDF5_SIGNATURE:
        return _keras_load(path, path, _checked_archive(path), unsafe, objects)
    config, version = _checked_h5(path, unsafe)
    changed = _keras2_options_dropped(path, config)
    if version.startswith("2."):
        changed |= _keras2_calls_rewritten(config)
    if not changed:
        return _keras_load(path, path, config, unsafe, objects)
    # Keras reads the config from the file: a copy holds the rewritten one.
    with tempfile.TemporaryDirectory(prefix="parity-h5-") as folder:
        readable = Path(folder) / f"model{path.suffix}"
        shutil.copyfile(path, readable)
        import h5py

        with h5py.File(readable, "r+") as h5:
            h5.attrs["model_config"] = json.dumps(config)
        return _keras_load(path, readable, config, unsafe, objects)


def _keras_load(
    path: Path, readable: Path, config: Any, unsafe: bool, objects: dict[str, Any]
) -> Any:
    """Keras' loader on ``readable`` (``path`` itself, or a copy of it),
    its failures told as one line about ``path``."""
    import keras

    try:
        return keras.saving.load_model(
            readable, custom_objects=objects or None, safe_mode=not unsafe, compile=False
        )
    except Exception as exc:
        message = quoted(exc)
        unknown = re.search(r"(?:Could not locate \w+|Unknown layer:?) '?([\w.>]+)", str(exc))
        if unknown:
            message = (
                f"it uses {unknown[1]!r}, a custom class or function this process does not "
                "know: give the Python file that defines it with --custom-objects FILE.py"
            )
        lambdas = _lambdas(config)
        refused = "safe_mode" in message or "unsafe" in message.lower()
        if lambdas and not unsafe and (refused or "lambda" in message.lower()):
            raise _lambda_refusal(path, lambdas[0]) from None
        raise ParityError(f"{path}: cannot load Keras model: {message}") from None


def _lambdas(config: Any) -> list[str]:
    return [layer.name for layer in declared_layers(config) if layer.class_name == "Lambda"]


def _lambda_refusal(path: Path, name: str) -> ParityError:
    return ParityError(
        f"{path}: the model needs unsafe deserialization (Lambda layer {name!r} runs Python "
        "code when loaded); pass --unsafe only if you trust this file"
    )


def _checked_archive(path: Path) -> Any:
    """The parsed ``config.json`` of the ``.keras`` archive at ``path``, once
    the archive is whole and within the module's limits."""
    if not zipfile.is_zipfile(path):
        raise ParityError(
            f"{path}: not a Keras 3 model file (.keras is a zip archive, .h5 an HDF5 file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            config = _checked_config(path, archive)
            bad = archive.testzip()
            if bad is not None:
                raise ParityError(f"{path}: corrupt archive (member {bad!r} is damaged)")
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
        raise ParityError(f"{path}: corrupt archive ({exc})") from None
    return config


def _checked_h5(path: Path, unsafe: bool) -> tuple[Any, str]:
    """The parsed ``model_config`` of the legacy HDF5 model at ``path`` and
    the Keras version that wrote it, read with h5py before Keras sees the
    file, once it is within the module's limits; a ``Lambda`` layer is
    refused here unless ``unsafe``.

    Keras' legacy loader names the format by the file's suffix, so an HDF5
    model file must be named ``.h5`` or ``.hdf5``."""
    import h5py

    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ParityError(f"{path}: an HDF5 model file must be named .h5 or .hdf5")
    try:
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs:
                raise ParityError(
                    f"{path}: an HDF5 file without a model_config (saved with "
                    "save_weights? parity needs the whole model, saved with model.save)"
                )
            text = _h5_config_text(path, h5py.h5a.open(h5.id, b"model_config"))
            version = h5.attrs.get("keras_version", b"")
            weights = _h5_data_bytes(h5)
    except ParityError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError on damaged files
        reason = quoted(exc, 200)
        raise ParityError(f"{path}: corrupt HDF5 file ({reason})") from None
    config = _parsed(path, "model_config", text)
    if isinstance(version, bytes):
        version = version.decode("ascii", errors="replace")
    limit = byte_limit(MAX_MODEL_BYTES_VARIABLE, MAX_MODEL_BYTES)
    if weights > ARCHIVE_FACTOR * limit:
        raise ParityError(
            f"{path}: the file's arrays take {describe_bytes(weights)} uncompressed, beyond "
            f"{ARCHIVE_FACTOR} x the model limit of {describe_bytes(limit)} "
            f"(set {MAX_MODEL_BYTES_VARIABLE} to raise it)"
        )
    _check_declared(path, config, limit)
    lambdas = _lambdas(config)
    if lambdas and not unsafe:
        raise _lambda_refusal(path, lambdas[0])
    return config, str(version)


def _h5_config_text(path: Path, attribute: Any) -> str:
    """The text of the HDF5 attribute ``model_config``, refused beyond
    :data:`MAX_CONFIG_BYTES` before it is parsed. A fixed-length string is
    measured before it is read; a variable-length one (which h5py writes for
    a ``str``) is stored in the file's heap, its length known only once read:
    it is read (no more than the file holds) and measured then."""
    import h5py

    kind = attribute.get_type()
    if attribute.shape not in ((), (1,)) or kind.get_class() != h5py.h5t.STRING:
        raise ParityError(f"{path}: model_config is not one string; not a Keras model file")
    if not kind.is_variable_str():
        _check_config_size(path, "model_config", attribute.get_storage_size())
    value = np.empty(
        attribute.shape, dtype=h5py.string_dtype() if kind.is_variable_str() else kind.dtype
    )
    attribute.read(value)
    text = value.reshape(-1)[0]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    _check_config_size(path, "model_config", len(text.encode("utf-8", errors="replace")))
    return text


def _check_config_size(path: Path, what: str, size: int, how: str = "") -> None:
    """Refuse a config of ``size`` bytes beyond :data:`MAX_CONFIG_BYTES`."""
    if size > MAX_CONFIG_BYTES:
        raise ParityError(
            f"{path}: {what} takes {describe_bytes(size)}{how}, beyond the limit of "
            f"{describe_bytes(MAX_CONFIG_BYTES)}"
        )


# Models nested in a model, whose node indices Keras 2 counts from 1.
_MODELS = ("Functional", "Model", "Sequential")
# Layers that Keras 2 called with ``initial_state`` recorded as extra positional
# inputs of the call.
_STATEFUL_CALLS = (
    "LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
)  # fmt: skip


def _keras2_calls_rewritten(config: Any) -> bool:
    """Rewrite, in the Keras 2 ``config`` in place, the layer calls Keras 3's
    legacy loader reads otherwise than Keras 2 wrote them; whether any was:

    - Keras 2 counts a nested model's own first node in the node index of
      every call that reads the nested model's output (``["encoder", 1, 1]``
      for its first call); Keras 3 does not, and never finds that node;
    - Keras 2 records a recurrent layer's ``initial_state`` as extra
      positional inputs of the call (``[["decoder_input", 0, 0, {}],
      ["encoder_lstm", 0, 1, {}], ...]``), which Keras 3 refuses ("expects
      1 input(s), but it received 3"); the call becomes the one Keras 3
      records: the sequence as the argument, the states as ``initial_state``.
    """
    layers = list(_dicts(config))
    models = {
        layer["config"].get("name")
        for layer in layers
        if layer.get("class_name") in _MODELS and isinstance(layer.get("config"), dict)
    }
    rewritten = False
    for layer in layers:
        nodes = layer.get("inbound_nodes")
        if not isinstance(nodes, list):
            continue
        for index, node in enumerate(nodes):
            if not _legacy_call(node):
                continue
            for entry in node:
                if entry[0] in models and entry[1] > 0:
                    entry[1] -= 1
                    rewritten = True
            if layer.get("class_name") in _STATEFUL_CALLS and len(node) > 1:
                kwargs = dict(node[0][3]) if len(node[0]) > 3 else {}
                kwargs["initial_state"] = [_tensor_reference(entry) for entry in node[1:]]
                nodes[index] = {"args": [_tensor_reference(node[0])], "kwargs": kwargs}
                rewritten = True
    return rewritten


def _legacy_call(node: Any) -> bool:
    """Whether ``node`` is a call in Keras 2's format: a list of
    ``[layer name, node index, tensor index(, kwargs)]``."""
    return isinstance(node, list) and all(
        isinstance(entry, list)
        and len(entry) in (3, 4)
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        for entry in node
    )


def _tensor_reference(entry: list) -> dict[str, Any]:
    """A Keras 2 inbound entry as Keras 3 writes a tensor argument: resolved
    by its history when the model is rebuilt (shape and dtype are placeholders)."""
    history = [entry[0], int(entry[1]), int(entry[2])]
    config = {"shape": [], "dtype": "float32", "keras_history": history}
    return {"class_name": "__keras_tensor__", "config": config}


def _keras2_options_dropped(path: Path, config: Any) -> bool:
    """Drop from ``config``, in place, the options a Keras 2 (``tf.keras``)
    file writes that Keras 3 refuses although they change nothing: every
    recurrent layer's ``time_major: false``. Whether any was dropped.

    Raises:
        ParityError: a time-major layer (``time_major: true``), which Keras 3 lacks.
    """
    dropped = False
    for node in _dicts(config):
        settings = node.get("config")
        if not isinstance(settings, dict) or "time_major" not in settings:
            continue
        if settings["time_major"]:
            raise ParityError(
                f"{path}: layer {settings.get('name')!r} is time-major (time_major=True), "
                "which Keras 3 cannot load; rebuild it batch-major"
            )
        del settings["time_major"]
        dropped = True
    return dropped


def _h5_data_bytes(h5: Any) -> int:
    """The bytes of every dataset in ``h5`` once decompressed (as declared)."""
    import h5py

    sizes = []

    def visit(_: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            sizes.append(prod(item.shape or ()) * item.dtype.itemsize)

    h5.visititems(visit)
    return sum(sizes)


def _checked_config(path: Path, archive: zipfile.ZipFile) -> Any:
    """The parsed ``config.json`` of ``archive``, once its declared sizes and
    the weights it declares are within the module's limits."""
    members = archive.infolist()
    names = [info.filename for info in members]
    for name in names:
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or re.match(r"[A-Za-z]:", name):
            raise ParityError(
                f"{path}: the archive holds a member named {name[:100]!r}, outside the archive; "
                "not a Keras model file"
            )
    if len(set(names)) != len(names):
        twice = next(name for index, name in enumerate(names) if name in names[:index])
        raise ParityError(f"{path}: the archive holds two members named {twice[:100]!r}")
    config_info = next((info for info in members if info.filename == CONFIG_NAME), None)
    if config_info is None:
        raise ParityError(f"{path}: not a Keras 3 model file (no config.json inside)")
    _check_config_size(path, "config.json", config_info.file_size, " uncompressed")
    limit = byte_limit(MAX_MODEL_BYTES_VARIABLE, MAX_MODEL_BYTES)
    total = sum(info.file_size for info in members)
    if total > ARCHIVE_FACTOR * limit:
        raise ParityError(
            f"{path}: the archive takes {describe_bytes(total)} uncompressed, beyond "
            f"{ARCHIVE_FACTOR} x the model limit of {describe_bytes(limit)} "
            f"(set {MAX_MODEL_BYTES_VARIABLE} to raise it)"
        )
    config = _parsed(path, CONFIG_NAME, archive.read(config_info))
    _check_declared(path, config, limit)
    return config


def _parsed(path: Path, what: str, text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc)[:200] or type(exc).__name__
        raise ParityError(f"{path}: {what} is not valid JSON ({reason})") from None


def _check_declared(path: Path, config: Any, limit: int) -> None:
    """Refuse a config whose layers declare more weights than ``limit`` bytes."""
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
    for key in ("batch_shape", "batch_input_shape", "input_shape", "shape"):
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
    return {"name": model.name, "file": Path(path).name, "sha256": model_digest(Path(path))}


def model_digest(path: Path) -> str:
    """The sha256 of a model file; for a SavedModel folder, of every file in
    it (relative path and contents, in sorted order)."""
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(item for item in path.rglob("*") if item.is_file()):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(item)))
    return digest.hexdigest()
