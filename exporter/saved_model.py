"""TensorFlow SavedModel folders (Keras 3's ``model.export(dir)``,
``tf.saved_model.save``) as Keras models the exporter and verification run.

A SavedModel holds a traced graph, not Keras layers. Its serving signature
is wrapped as a functional Keras model: one ``keras.Input`` per signature
input (named and shaped by its ``TensorSpec``), one layer that calls the
signature, and one ``Identity`` layer per output named by the signature's
output key. The wrapper exports through the normal path (tf2onnx freezes the
signature's graph) and, called eagerly, is TensorFlow's own answer for
verification. With no Keras layers to read, there is nothing to split into a
seq2seq encoder and step, to fuse, or to find a mask in: the bundle holds the
general graph.

Loading a SavedModel runs no Python, but its graph may read or write files
when called: a graph with such ops is refused unless ``unsafe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.runtime.errors import ParityError, quoted
from parity.runtime.limits import byte_limit, describe_bytes

SIGNATURE = "serving_default"
GRAPH_FILE = "saved_model.pb"
NOTE = "SavedModel: exported as one graph; no Keras layers to split or fuse"
# Ops that touch files or run Python when the graph is called. Restoring the
# variables uses the saver's own ops (RestoreV2), which are not among these.
UNSAFE_OPS = frozenset(
    {"ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "PyFuncStateless", "EagerPyFunc"}
)


def is_saved_model(path: Path) -> bool:
    """Whether ``path`` is a SavedModel folder."""
    return path.is_dir() and (path / GRAPH_FILE).is_file()


def is_wrapped_saved_model(model: Any) -> bool:
    """Whether ``model`` is the wrapper :func:`load_saved_model` builds."""
    return any(isinstance(layer, _signature_layer_class()) for layer in model.layers)


def load_saved_model(
    path: Path, *, unsafe: bool = False, limit_variable: str, default_limit: int
) -> Any:
    """The serving signature of the SavedModel at ``path`` as a functional Keras model.

    Args:
        path: the SavedModel folder.
        unsafe: allow a graph with ops that read or write files or run Python.
        limit_variable: the environment variable that raises the size limit.
        default_limit: the limit in bytes on the folder's files together.

    Raises:
        ParityError: a folder beyond the limit, a graph with unsafe ops, no
            ``serving_default`` signature, or a SavedModel TensorFlow cannot load.
    """
    limit = byte_limit(limit_variable, default_limit)
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    if total > limit:
        raise ParityError(
            f"{path}: the SavedModel takes {describe_bytes(total)}, beyond the model limit "
            f"of {describe_bytes(limit)} (set {limit_variable} to raise it)"
        )
    if not unsafe:
        found = sorted(_op_types(path) & UNSAFE_OPS)
        if found:
            raise ParityError(
                f"{path}: the SavedModel's graph holds {found[0]} (it reads or writes files or "
                "runs Python when called); pass --unsafe only if you trust this model"
            )
    import keras

    try:
        layer = _signature_layer_class()(str(path), call_endpoint=SIGNATURE, name="signature")
    except Exception as exc:
        reason = quoted(exc, 300)
        raise ParityError(f"{path}: cannot load the SavedModel's {SIGNATURE!r}: {reason}") from None
    _, specs = layer.call_endpoint_fn.structured_input_signature
    inputs = [
        keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype.name, name=name)
        for name, spec in specs.items()
    ]
    clash = sorted(set(specs) & set(layer.call_endpoint_fn.structured_outputs))
    if clash:
        raise ParityError(
            f"{path}: the signature's input and output {clash[0]!r} share a name, which "
            "the graph's inputs and outputs cannot"
        )
    values = layer({tensor.name: tensor for tensor in inputs})
    outputs = [keras.layers.Identity(name=key)(value) for key, value in values.items()]
    return keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=path.name or "saved_model",
    )


def _op_types(path: Path) -> set[str]:
    """Every op type in the SavedModel's graphs and their functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / GRAPH_FILE).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or a file that vanished
        raise ParityError(f"{path}: {GRAPH_FILE} is not a SavedModel ({exc})") from None
    found = set()
    for meta in proto.meta_graphs:
        found.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            found.update(node.op for node in function.node_def)
    return found


_LAYER_CLASS: list[type] = []


def _signature_layer_class() -> type:
    """``TFSMLayer`` calling the signature with its inputs by name (the
    signature takes keyword arguments only), made once on first use so that
    importing this module does not import Keras."""
    if not _LAYER_CLASS:
        import keras

        class ServingSignature(keras.layers.TFSMLayer):
            """A SavedModel's signature called with a dict of its inputs."""

            def call(self, inputs: dict, training: bool = False) -> Any:
                return self.call_endpoint_fn(**inputs)

        _LAYER_CLASS.append(ServingSignature)
    return _LAYER_CLASS[0]
