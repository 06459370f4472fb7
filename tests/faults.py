"""Damage an exported graph on purpose, the way a wrong conversion would.

Each fault edits the ONNX graph of a bundle and writes it back as a bundle
with matching hashes, so only numerical verification can tell it from the
original. Works on the two shapes tf2onnx gives a Keras LSTM: the fused ONNX
``LSTM`` op (weights W, R, B in gate order i, o, f, c) and the masked ``Loop``
(a Keras kernel (in, 4u) and recurrent kernel (u, 4u) in gate order i, f, c, o,
and a bias (4u,), fed into the loop from the outer graph).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from parity.exporter.bundle_writer import write_bundle
from parity.runtime.bundle_format.manifest import read_manifest
from parity.runtime.npy import load_arrays

Fault = Callable[[onnx.ModelProto], None]


def damaged_copy(bundle: Path, out: Path, fault: Fault, graph: str = "model") -> Path:
    """A copy of ``bundle`` at ``out`` whose graph ``graph`` ``fault`` has
    changed (the other graphs copied as they are), its hashes updated."""
    manifest = read_manifest(bundle)
    data = {key: (bundle / spec.file).read_bytes() for key, spec in manifest.graphs.items()}
    proto = onnx.load_from_string(data[graph])
    fault(proto)
    after = proto.SerializeToString()
    assert after != data[graph], "the fault changed nothing"
    data[graph] = after
    golden = load_arrays(bundle / manifest.golden["file"]) if manifest.golden else None
    write_bundle(out, manifest, data, golden)
    return out


def float_initializers(proto: onnx.ModelProto) -> list[str]:
    """The names of a graph's float initializers that are not all zeros (a
    scaled zero changes nothing), in the graph's order."""
    return [
        init.name
        for init in proto.graph.initializer
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
        and np.any(numpy_helper.to_array(init))
    ]


def scale_initializer(name: str, factor: float) -> Fault:
    """Multiply one initializer by ``factor``."""

    def fault(proto):
        _replace(proto, name, numpy_helper.to_array(_initializer(proto, name)) * factor)

    return fault


def _fused(proto: onnx.ModelProto) -> onnx.NodeProto:
    return next(node for node in proto.graph.node if node.op_type in ("LSTM", "GRU", "RNN"))


def zero_fused_bias(proto: onnx.ModelProto) -> None:
    """Set the fused recurrent op's bias (input 3) to zero."""
    name = _fused(proto).input[3]
    _replace(proto, name, np.zeros_like(numpy_helper.to_array(_initializer(proto, name))))


def swap_fused_gates(proto: onnx.ModelProto) -> None:
    """Swap the first two gates' weights of the fused LSTM or GRU op
    (W, R: (1, gates * u, n); B: (1, 2 * gates * u))."""
    node = _fused(proto)
    gates = {"LSTM": 4, "GRU": 3}[node.op_type]
    for index, role in ((1, "kernel"), (2, "recurrent"), (3, "bias")):
        value = numpy_helper.to_array(_initializer(proto, node.input[index])).copy()
        blocks = np.split(value, gates * (2 if role == "bias" else 1), axis=1)
        for offset in (0, gates) if role == "bias" else (0,):
            blocks[offset], blocks[offset + 1] = blocks[offset + 1], blocks[offset]
        _replace(proto, node.input[index], np.concatenate(blocks, axis=1))


def drop_sequence_lens(proto: onnx.ModelProto) -> None:
    """Run the fused recurrent op without the rows' lengths: padded steps count."""
    node = _fused(proto)
    assert len(node.input) > 4 and node.input[4], "the op has no sequence_lens"
    node.input[4] = ""


def hard_sigmoid_gates(weight: str, nth: int = 0) -> Fault:
    """The recurrent op (``LSTM``, ``GRU``) whose input weights are ``weight``
    (the ``nth`` of those that read it) computes its gates with HardSigmoid
    rather than Sigmoid."""

    def fault(proto):
        readers = [
            n for n in proto.graph.node if n.op_type in ("LSTM", "GRU") and n.input[1] == weight
        ]
        node = readers[nth]
        activations = {"LSTM": ["HardSigmoid", "Tanh", "Tanh"], "GRU": ["HardSigmoid", "Tanh"]}
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        directions = 2 if attributes.get("direction") == b"bidirectional" else 1
        kept = [a for a in node.attribute if a.name != "activations"]
        del node.attribute[:]
        node.attribute.extend(kept)
        gates = activations[node.op_type] * directions
        node.attribute.append(helper.make_attribute("activations", gates))

    return fault


def hard_sigmoid_node(in_body: bool = False) -> Fault:
    """The first ``Sigmoid`` node of the graph (of a ``Loop`` body with
    ``in_body``) becomes a ``HardSigmoid``."""

    def fault(proto):
        graphs = all_graphs(proto.graph)[1:] if in_body else [proto.graph]
        node = next(n for graph in graphs for n in graph.node if n.op_type == "Sigmoid")
        node.op_type = "HardSigmoid"

    return fault


def all_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """``graph`` and every subgraph in it, at any depth."""
    found = [graph]
    for node in graph.node:
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                found += all_graphs(sub)
    return found


def initializers(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every initializer of the graph and of its subgraphs."""
    return [init for graph in all_graphs(proto.graph) for init in graph.initializer]


def _initializer(proto: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(init for init in initializers(proto) if init.name == name)


def _replace(proto: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init = _initializer(proto, name)
    init.CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(init).dtype), name))


def _lstm_weights(proto: onnx.ModelProto) -> dict[str, str]:
    """Names of the first LSTM's input kernel, recurrent kernel and bias, and
    the layout they follow ("onnx" or "keras")."""
    for node in proto.graph.node:
        if node.op_type == "LSTM":
            return {"kernel": node.input[1], "recurrent": node.input[2], "bias": node.input[3],
                    "layout": "onnx"}  # fmt: skip
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    recurrent = next(n for n, s in shapes.items() if len(s) == 2 and s[1] == 4 * s[0])
    units = shapes[recurrent][0]
    kernel = next(
        n for n, s in shapes.items() if len(s) == 2 and s[1] == 4 * units and n != recurrent
    )
    bias = next(n for n, s in shapes.items() if s == (4 * units,))
    return {"kernel": kernel, "recurrent": recurrent, "bias": bias, "layout": "keras"}


def scale_kernel(factor: float = 1 + 1e-3) -> Fault:
    """Multiply the LSTM's input kernel by ``factor``."""

    def fault(proto):
        name = _lstm_weights(proto)["kernel"]
        _replace(proto, name, numpy_helper.to_array(_initializer(proto, name)) * factor)

    return fault


def nudge_largest_weight(relative: float = 1e-3) -> Fault:
    """Change the LSTM input kernel's largest weight by ``relative`` of its magnitude."""

    def fault(proto):
        name = _lstm_weights(proto)["kernel"]
        value = numpy_helper.to_array(_initializer(proto, name)).copy()
        index = np.unravel_index(np.argmax(np.abs(value)), value.shape)
        value[index] += relative * abs(value[index])
        _replace(proto, name, value)

    return fault


def zero_bias(proto: onnx.ModelProto) -> None:
    """Set the LSTM's bias to zero."""
    name = _lstm_weights(proto)["bias"]
    _replace(proto, name, np.zeros_like(numpy_helper.to_array(_initializer(proto, name))))


def swap_gates(proto: onnx.ModelProto) -> None:
    """Swap the forget and input gates' weights (kernel, recurrent kernel, bias)."""
    names = _lstm_weights(proto)
    for role in ("kernel", "recurrent", "bias"):
        value = numpy_helper.to_array(_initializer(proto, names[role])).copy()
        if names["layout"] == "onnx":  # W, R: (1, 4u, n) in i, o, f, c; B: (1, 8u)
            axis, units = 1, value.shape[1] // (8 if role == "bias" else 4)
            first, second = 0, 2  # i and f
        else:  # kernels (n, 4u) and bias (4u,) in i, f, c, o
            axis, units = value.ndim - 1, value.shape[-1] // 4
            first, second = 0, 1
        blocks = np.split(value, value.shape[axis] // units, axis=axis)
        blocks[first], blocks[second] = blocks[second], blocks[first]
        if names["layout"] == "onnx" and role == "bias":  # the recurrent bias half too
            blocks[4 + first], blocks[4 + second] = blocks[4 + second], blocks[4 + first]
        _replace(proto, names[role], np.concatenate(blocks, axis=axis))


def remove_masking(proto: onnx.ModelProto) -> None:
    """Make the mask never match, so padded steps count as real ones: the
    masked graph compares the input with the mask value (``Equal``)."""
    (equal,) = [node for node in proto.graph.node if node.op_type == "Equal"]
    const = equal.input[1]
    value = numpy_helper.to_array(_initializer(proto, const))
    _replace(proto, const, np.full_like(value, 12345.0))


def reverse_time(proto: onnx.ModelProto) -> None:
    """Feed the model's first input to the graph with its time axis (1) reversed."""
    graph = proto.graph
    source = graph.input[0].name
    reversed_name = f"{source}__reversed"
    for node in graph.node:
        node.input[:] = [reversed_name if name == source else name for name in node.input]
    constants = {
        "rev_starts": [-1],
        "rev_ends": [-(2**62)],
        "rev_axes": [1],
        "rev_steps": [-1],
    }
    for name, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    graph.node.insert(
        0, helper.make_node("Slice", [source, *constants], [reversed_name], name="reverse_time")
    )


FAULTS: dict[str, Fault] = {
    "kernel scaled by 1+1e-3": scale_kernel(),
    "largest weight moved by 1e-3 of itself": nudge_largest_weight(),
    "bias set to zero": zero_bias,
    "input and forget gates swapped": swap_gates,
    "time axis reversed": reverse_time,
}
MASK_FAULTS: dict[str, Fault] = {"masking removed": remove_masking}


def copy_bundle(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    return out
