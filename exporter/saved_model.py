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
when called (``tf.print`` to a file, ``SaveV2`` with any prefix, readers and
datasets), at export (tf2onnx traces it) and at every verification. Unless
``unsafe``, every op that the serving signature runs (its functions, and
every function they call, branches and loop bodies included) must be on an
allow-list: the op types tf2onnx converts, less those that read from outside
the graph (queues, dataset iterators), and the plumbing of variables and
function calls. The saver's own functions, which the signature never calls,
are not read: loading restores the variables without running them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.runtime.errors import ParityError, quoted
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.paths import file_kind

SIGNATURE = "serving_default"
GRAPH_FILE = "saved_model.pb"
NOTE = "SavedModel: exported as one graph; no Keras layers to split or fuse"
# Ops that pass values, read variables, call functions or check values, which
# tf2onnx's freezing removes, folds or rewrites rather than converts.
PLUMBING = frozenset(
    {
        "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "Snapshot", "PreventGradient",
        "VarHandleOp", "ReadVariableOp", "VarIsInitializedOp", "ResourceGather",
        "StatefulPartitionedCall", "PartitionedCall", "Assert", "Rank", "ShapeN",
        "StringFormat", "PrintV2",
    }
)  # fmt: skip
# Ops tf2onnx converts that read from outside the graph.
OUTSIDE_OPS = frozenset(
    {
        "FIFOQueueV2", "QueueDequeueV2", "QueueDequeueManyV2", "QueueDequeueUpToV2",
        "IteratorV2", "IteratorGetNext",
    }
)  # fmt: skip
# Where ``tf.print`` may write: the process's own streams and log, not a file.
PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})


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
    for item in path.rglob("*"):
        kind = file_kind(item)
        if kind:
            raise ParityError(f"{item}: is {kind}, not a file of a SavedModel; refused")
    total = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    if total > limit:
        raise ParityError(
            f"{path}: the SavedModel takes {describe_bytes(total)}, beyond the model limit "
            f"of {describe_bytes(limit)} (set {limit_variable} to raise it)"
        )
    if not unsafe:
        refused = _refused_op(_signature_nodes(path))
        if refused:
            raise ParityError(
                f"{path}: the SavedModel's graph holds {refused} (its serving signature may run "
                "only ops ONNX conversion takes, variable reads and function calls: others may "
                "read or write files or run Python); pass --unsafe only if you trust this model"
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


def _signature_nodes(path: Path) -> list[Any]:
    """Every node the serving signature runs: those its outputs depend on in
    the SavedModel's graph, and every node of every function they call
    (through call ops, branches, loop bodies), at any depth."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / GRAPH_FILE).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or a file that vanished
        raise ParityError(f"{path}: {GRAPH_FILE} is not a SavedModel ({quoted(exc)})") from None
    found = []
    for meta in proto.meta_graphs:
        if SIGNATURE not in meta.signature_def:
            continue
        nodes = {node.name: node for node in meta.graph_def.node}
        functions = {f.signature.name: f for f in meta.graph_def.library.function}
        outputs = meta.signature_def[SIGNATURE].outputs.values()
        names = [tensor.name.split(":")[0] for tensor in outputs]
        called: list[str] = []
        reached: set[str] = set()
        while names:
            name = names.pop().lstrip("^").split(":")[0]
            if name in reached or name not in nodes:
                continue
            reached.add(name)
            found.append(nodes[name])
            names.extend(nodes[name].input)
            called.extend(_called(nodes[name], functions))
        run: set[str] = set()
        while called:
            name = called.pop()
            if name in run:
                continue
            run.add(name)
            for node in functions[name].node_def:
                found.append(node)
                called.extend(_called(node, functions))
    return found


def _called(node: Any, functions: dict[str, Any]) -> list[str]:
    """The functions of the library that ``node`` calls: through its
    attributes (``f``, ``then_branch``, ``body``, ...) or as its op."""
    names = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        if value.HasField("list"):
            names.extend(function.name for function in value.list.func)
    return [name for name in names if name in functions]


def _refused_op(nodes: list[Any]) -> str:
    """The first op of ``nodes`` that is not allowed, as a message names it
    ("" where every one is): allowed are tf2onnx's op types, less
    :data:`OUTSIDE_OPS`, and :data:`PLUMBING`; ``PrintV2`` only to a stream
    of :data:`PRINT_STREAMS`."""
    allowed = (_convertible_ops() - OUTSIDE_OPS) | PLUMBING
    for node in nodes:
        if node.op not in allowed:
            return node.op
        if node.op == "PrintV2":
            stream = "stderr"  # the default, which a saved graph leaves out
            if "output_stream" in node.attr:
                stream = node.attr["output_stream"].s.decode("utf-8", "replace")
            if stream not in PRINT_STREAMS:
                return f"PrintV2 to {stream[:100]!r}"
    return ""


def _convertible_ops() -> set[str]:
    """The TensorFlow op types tf2onnx has a handler for, at any opset."""
    import tf2onnx.onnx_opset  # noqa: F401  (registers the handlers)
    from tf2onnx.handler import tf_op

    return {op for domain in tf_op.get_opsets().values() for opset in domain for op in opset}


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
