"""Where a Keras layer's output is in an exported ONNX graph, and its value
there in Keras' layout: the ONNX side of :mod:`verify.localise`.

Each rule is derived from what the exporter does, never guessed from a
layer's name; they are tried in this order:

1. *graph output*: a Keras model's output is the graph output at the same
   position (:mod:`parity.exporter.convert` orders and names them so).
2. *tf name*: the TensorFlow name of the layer's output in the trace tf2onnx
   makes (:func:`parity.exporter.convert.traced_output_names`) is the ONNX
   tensor's name wherever tf2onnx converted that op one to one and
   onnx-simplifier kept it. Two layer outputs with one TensorFlow tensor
   (``Dropout`` at inference) share it: the later has no tensor of its own.
3. *recurrent op*: a recurrent layer is one unit, an ONNX ``LSTM``/``GRU``/
   ``RNN`` node or parity's ``Scan`` (:mod:`parity.exporter.rnn_scan`),
   found by its input weights, which hold the layer's kernel up to a
   reordering of gates and a transpose: compared as sorted values, the
   closest op is the layer's (a damaged copy too). Its outputs follow the
   op's definition: ``Y`` (time, directions, batch, units), ``Y_h``/``Y_c``
   (directions, batch, units), and parity's masked rewrite
   (:mod:`parity.exporter.fused`) of ``Y``.
4. *scope*: for a layer's main output, the last float tensor made in the
   layer's TensorFlow name scope and read outside it, downstream of the
   layer's weights where it has any, and not claimed by rules 1-3 (a
   ``TimeDistributed`` layer, folded by :mod:`parity.exporter.rewrite`, keeps
   only its inner layer's tensor). Candidates are confirmed by their values'
   shape: the first that fits a layout is taken.
5. otherwise the layer has no tensor of its own (``Masking`` becomes the
   fused op's ``sequence_lens``; onnx-simplifier cancels the transposes of a
   sequence passed between two recurrent ops).

A tensor found by rule 2 or 4 that the graph computes from a later layer's
tensor is dropped: tf2onnx's optimizer moved the layer's op past that
layer's (a ``Transpose`` pushed past a ``Relu``), and the name now holds the
later value.

Layouts: a recurrent op's outputs are converted by the op's definition.
Other values are brought to Keras' layout by the one rule their shape admits:
the same, size-1 axes, channels-first (tf2onnx's ``Conv`` and ``MaxPool`` are
NCHW under the TensorFlow name), time-major, or time folded into the batch
(:mod:`parity.exporter.rewrite`). Where equal sizes admit several, the
producer decides: a value made by a channels-first op is channels-first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import helper, numpy_helper

from parity.exporter.fused import PREFIX as FUSED_PREFIX
from parity.exporter.onnx_nodes import RECURRENT_OPS, readers_of, subgraphs
from parity.exporter.rnn_scan import BODY as RNN_SCAN_BODY

# At most this many scope candidates per layer output are exposed.
SCOPE_CANDIDATES = 4
# ONNX ops that write channels-first values, and ops that keep their input's layout.
CHANNELS_FIRST_OPS = frozenset({
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "InstanceNormalization", "LRN",
})  # fmt: skip
ELEMENTWISE_OPS = frozenset({
    "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "Tanh", "Softplus",
    "Softsign", "Clip", "Add", "Sub", "Mul", "Div", "Identity", "Neg", "Abs", "Exp",
    "PRelu", "HardSwish", "Erf", "Cast", "Max", "Min",
})  # fmt: skip
# What the loop graph's copy of a body tensor is called, and its stack over the steps.
EXPOSED_PREFIX = "parity_localise/"


@dataclass(frozen=True)
class Recurrent:
    """What the ONNX side needs to know of a recurrent layer (or a
    ``Bidirectional`` over one): its kernels, to find its op by them, and
    which op output each of its outputs is."""

    kernels: tuple[np.ndarray, ...]  # each direction's input kernel
    sequences: bool  # return_sequences
    lstm: bool  # two states per direction (h, c), else one
    merge_mode: str | None  # a Bidirectional's; None for one direction

    @property
    def directions(self) -> int:
        return len(self.kernels)


@dataclass(frozen=True)
class Wanted:
    """One output of one Keras layer call, to be found in a graph.

    ``tf_name`` is its TensorFlow name in tf2onnx's trace (None: it is a model
    input); ``position`` which of the Keras model's outputs it is (None: an
    inner tensor)."""

    layer: str
    kind: str  # the Keras class, e.g. "LSTM" or "TimeDistributed(Conv2D)"
    index: int  # which output of the call
    tf_name: str | None
    position: int | None
    has_weights: bool
    recurrent: Recurrent | None = None


@dataclass(frozen=True)
class Located:
    """Where one layer output may be: ``candidates`` to confirm by shape,
    found by the rule ``mapped_by``; ``op_output`` names the recurrent op's
    output for the recurrent rule (``Y``, ``Y_h``, ...) and ``direction`` the
    direction of a bidirectional op that it is."""

    candidates: tuple[str, ...] = ()
    mapped_by: str = "-"
    op_output: str = ""
    direction: int | None = None
    note: str = ""


class GraphIndex:
    """One ONNX graph, or a ``Loop`` body, indexed for the search.

    Args:
        graph: the graph.
        prefix: what the loop graph put before the names of the graph it
            came from (``encoder/``, ``step/``); "" for the graph itself.
        outer: initializers of the graph around it (a body reads them).
    """

    def __init__(
        self,
        graph: onnx.GraphProto,
        prefix: str = "",
        outer: Mapping[str, onnx.TensorProto] | None = None,
    ) -> None:
        self.prefix = prefix
        self.constants = {**(outer or {}), **{t.name: t for t in graph.initializer}}
        self.nodes = list(graph.node)
        self.producer = {name: node for node in self.nodes for name in node.output if name}
        self.readers = readers_of(self.nodes)
        self.outputs = {value.name for value in graph.output}

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def channels_first(self, name: str) -> bool:
        """Whether ``name`` is made by a channels-first op, through element-wise ones."""
        for _ in range(50):
            node = self.producer.get(name)
            if node is None or node.op_type not in CHANNELS_FIRST_OPS | ELEMENTWISE_OPS:
                return False
            if node.op_type in CHANNELS_FIRST_OPS:
                return True
            name = next((i for i in node.input if i in self.producer), "")
        return False

    def downstream(self, sources: Sequence[onnx.NodeProto]) -> set[str]:
        """Every tensor computed from ``sources``' outputs."""
        return _closure(
            (name for node in sources for name in node.output),
            lambda name: (out for reader in self.readers.get(name, []) for out in reader.output),
        )

    def upstream(self, name: str) -> set[str]:
        """Every tensor ``name`` is computed from (within this graph)."""
        return _closure(self._inputs_of(name), self._inputs_of)

    def _inputs_of(self, name: str) -> Sequence[str]:
        node = self.producer.get(name)
        return () if node is None else node.input

    def in_trace(self, wanted: Sequence[Wanted]) -> bool:
        """Whether any node carries the trace's model scope: a graph traced
        otherwise (another exporter, another tf2onnx) has none, and only the
        graph-output and recurrent-op rules can find its layers."""
        scopes = {w.tf_name.split("/")[0] + "/" for w in wanted if w.tf_name and "/" in w.tf_name}
        names = (node.name[len(self.prefix) :] for node in self.nodes)
        return not scopes or any(name.startswith(tuple(scopes)) for name in names)


def _closure(start: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
    """Every name reached from ``start`` (included) by ``step``; "" (an
    omitted optional input) names no tensor."""
    found: set[str] = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        if name and name not in found:
            found.add(name)
            pending += step(name)
    return found


def locate(
    index: GraphIndex, wanted: Sequence[Wanted], graph_outputs: Sequence[str]
) -> list[Located]:
    """Where each of ``wanted`` is in the graph, by the rules of this module.

    Args:
        index: the graph.
        wanted: every output of every layer call of the Keras model the graph
            was converted from, in the model's order.
        graph_outputs: the graph's outputs in the Keras model's order (in a
            loop body: the step graph's, prefixed).
    """
    units = _units(index, [w for w in wanted if w.recurrent is not None])
    found: list[Located] = []
    first_with: dict[str, str] = {}  # a TensorFlow name -> the first layer whose output it is
    claimed: set[str] = set()  # tensors that an exact rule gave a layer output
    for w in wanted:
        tf_name = index.prefix + w.tf_name if w.tf_name else None
        position = (
            w.position if w.position is not None and w.position < len(graph_outputs) else None
        )
        if position is not None and graph_outputs[position] in index.producer:
            result = Located((graph_outputs[position],), "graph output")
        elif tf_name is None:
            result = Located(note="its output is a model input")
        elif first_with.get(tf_name, w.layer) != w.layer:
            result = Located(note=f"same tensor as {first_with[tf_name]!r}")
        elif tf_name in index.producer:
            result = Located((tf_name,), "tf name")
        elif w.layer in units:
            result = _from_op(index, units[w.layer], w)
        else:
            result = Located()
        if not result.candidates and not result.note:
            result = _by_scope(index, tf_name, w, units, claimed) if w.index == 0 else result
        if not result.candidates and not result.note:
            result = Located(note="no tensor of the graph holds it (pruned, or fused away)")
        if tf_name:
            first_with.setdefault(tf_name, w.layer)
        if result.mapped_by != "scope":
            claimed.update(result.candidates)
        found.append(result)
    return _unmoved(index, wanted, found)


def _unmoved(index: GraphIndex, wanted: Sequence[Wanted], found: list[Located]) -> list[Located]:
    """``found`` without the tensors the converter's optimizer moved: tf2onnx
    pushes a ``Transpose`` past the op after it, the two nodes keeping their
    names, so the tensor named after a layer can be computed from the tensor
    of a layer after it (which no graph in the model's order computes) and
    hold that later layer's value. Such a tensor is not the layer's."""
    later: dict[str, int] = {}  # a tensor an exact rule gave -> its layer output's position
    for i, result in enumerate(found):
        if result.mapped_by != "scope":
            later.update((name, i) for name in result.candidates)
    kept = []
    for i, (w, result) in enumerate(zip(wanted, found, strict=True)):
        moved = {}
        for name in result.candidates if result.mapped_by in ("tf name", "scope") else ():
            after = [j for t in index.upstream(name) if (j := later.get(t, -1)) > i]
            after = [j for j in after if wanted[j].layer != w.layer]
            if after:
                moved[name] = wanted[min(after)].layer
        left = tuple(name for name in result.candidates if name not in moved)
        if moved and not left:
            past = next(iter(moved.values()))
            note = f"the converter moved its op past {past!r}: no tensor holds its value"
            result = Located(note=note)
        elif moved:
            result = replace(result, candidates=left)
        kept.append(result)
    return kept


def _units(index: GraphIndex, recurrent: Sequence[Wanted]) -> dict[str, onnx.NodeProto]:
    """Each recurrent layer's op: the op whose input weights are closest to the
    layer's kernels, one op per layer. Where several are as close (layers with
    equal weights, which onnx-simplifier then stores once), the graph's order
    follows the model's."""
    scans = {node.name for node in index.nodes if node.op_type == "Scan" and any(
        graph.name == RNN_SCAN_BODY for a in node.attribute for graph in subgraphs(a))}  # fmt: skip
    ops = [
        (node, index.array(node.name + "/W_t" if node.name in scans else node.input[1]))
        for node in index.nodes
        if node.op_type in RECURRENT_OPS or node.name in scans
    ]
    kernels = {w.layer: w.recurrent.kernels for w in recurrent}
    pairs = sorted(
        (_weight_gap(weight, kernels[layer]), position, order, layer)
        for position, (_, weight) in enumerate(ops)
        for order, layer in enumerate(kernels)
    )
    units: dict[str, onnx.NodeProto] = {}
    taken: set[int] = set()
    for gap, position, _, layer in pairs:
        if np.isfinite(gap) and layer not in units and position not in taken:
            taken.add(position)
            units[layer] = ops[position][0]
    return units


def _weight_gap(weight: np.ndarray | None, kernels: Sequence[np.ndarray]) -> float:
    """How far an op's input weights are from a layer's kernels, order aside:
    the largest gap between their sorted values, over the largest kernel value."""
    keras = np.sort(np.concatenate([np.ravel(k) for k in kernels]).astype(np.float64))
    if weight is None or weight.size != keras.size or keras.size == 0:
        return float("inf")
    found = np.sort(weight.ravel().astype(np.float64))
    return float(np.max(np.abs(keras - found)) / max(float(np.max(np.abs(keras))), 1e-30))


def _op_outputs(index: GraphIndex, node: onnx.NodeProto) -> dict[str, str]:
    """A recurrent op's ``Y``, ``Y_h`` (and ``Y_c``) as the layer's values: past
    parity's masked rewrite, and for a ``Scan`` the ``Unsqueeze`` that makes
    them the op's shapes, or, where onnx-simplifier folded it into a
    ``Squeeze``, the scan's own values (``Y_scan``: time, batch, units;
    ``h_scan``: batch, units)."""
    if node.op_type == "Scan":

        def made(*parts: str) -> str:
            return next(
                (node.name + "/" + p for p in parts if node.name + "/" + p in index.producer), ""
            )

        def unsqueezed(name: str) -> str:
            readers = index.readers.get(name, [])
            return next((r.output[0] for r in readers if r.op_type == "Unsqueeze"), "")

        every, last = made("y_steps", "every_h"), made("h_at_length", "h_last")
        outputs = {"Y": unsqueezed(every), "Y_h": unsqueezed(last), "Y_scan": every, "h_scan": last}
    else:
        names = [*node.output, "", "", ""]
        outputs = {
            "Y": names[0],
            "Y_h": names[1],
            "Y_c": names[2] if node.op_type == "LSTM" else "",
        }
    y = outputs["Y"]
    if y.endswith(FUSED_PREFIX + "mask/y_run"):  # exporter.fused._with_sequence_lengths
        raw = y[: -len("y_run")] + "y_raw"
        outputs["Y"] = next(
            (r.output[0] for r in index.readers.get(raw, []) if r.op_type == "Where"), ""
        )
    return {key: name for key, name in outputs.items() if name and name in index.producer}


def _from_op(index: GraphIndex, node: onnx.NodeProto, w: Wanted) -> Located:
    """A recurrent layer's output from its op's outputs (the op's definition)."""
    outputs = _op_outputs(index, node)
    layer = w.recurrent

    def taken(key: str, direction: int | None = None) -> Located:
        return Located(
            (outputs[key],), "recurrent op", key, direction, f"{node.op_type} {node.name}"
        )

    mains = (
        2 if layer.directions == 2 and layer.merge_mode is None else 1
    )  # then: forward, backward
    if w.index < mains:
        direction = w.index if mains == 2 else None
        if layer.directions == 2 and layer.merge_mode not in ("concat", None):
            return Located(note=f"merge_mode={layer.merge_mode} is not an op output")
        for key in ("Y", "Y_scan") if layer.sequences else ():
            if key in outputs:
                return taken(key, direction)
        for key in ("Y_h", "h_scan"):  # the last output; a one-step sequence too
            if key in outputs:
                return taken(key, direction)
        return Located(note="the op writes neither Y nor Y_h")
    direction, which = divmod(w.index - mains, 2 if layer.lstm else 1)
    key = "Y_c" if which == 1 else "Y_h"
    if key in outputs:
        return taken(key, direction)
    if key == "Y_h" and "h_scan" in outputs:
        return taken("h_scan")
    return Located(note=f"the op does not write {key}")


def _by_scope(
    index: GraphIndex,
    tf_name: str | None,
    w: Wanted,
    units: Mapping[str, onnx.NodeProto],
    claimed: set[str],
) -> Located:
    """The tensors made in the layer's TensorFlow scope and read outside it,
    last first, downstream of the layer's weights where it has any."""
    parts = (tf_name or "").split("/")
    if len(parts) < 3:
        return Located()
    scope = "/".join(parts[:2]) + "/"

    def inside(node: onnx.NodeProto) -> bool:
        return (node.name or (node.output[0] if node.output else "")).startswith(scope)

    sources = [n for n in index.nodes
               if any(i.startswith(scope) and i in index.constants for i in n.input)]  # fmt: skip
    if w.layer in units:
        sources.append(units[w.layer])
    below = index.downstream(sources) if sources and w.has_weights else None
    candidates = [
        name
        for node in reversed(index.nodes)
        if inside(node)
        for name in node.output
        if name
        and name not in claimed
        and (below is None or name in below)
        and (name in index.outputs or any(not inside(r) for r in index.readers.get(name, [])))
    ]
    if not candidates:
        return Located(note=f"nothing of scope {scope.rstrip('/')!r} is left in the graph")
    return Located(tuple(candidates[:SCOPE_CANDIDATES]), "scope")


def in_keras_layout(
    value: np.ndarray, located: Located, shape: tuple[int, ...], channels_first: bool
) -> tuple[str, np.ndarray] | None:
    """``value`` (an ONNX tensor ``located`` found) in Keras' layout
    ``shape``, and how it was brought there; None where it does not fit.

    Args:
        value: the tensor's value.
        located: how it was found (the recurrent rule converts by the op's
            definition).
        shape: the Keras output's shape.
        channels_first: whether a channels-first op made the value (it
            decides where equal sizes admit several layouts).
    """
    if located.op_output:
        view = _op_view(value, located, shape)
        return None if view is None or view.shape != shape else (f"op {located.op_output}", view)
    options = _layouts(value, shape)
    distinct: list[tuple[str, np.ndarray]] = []
    for label, view in options:
        if not any(np.array_equal(view, other) for _, other in distinct):
            distinct.append((label, view))
    if len(distinct) > 1:  # equal sizes: the producer decides
        chosen = [o for o in distinct if ("channels-first" in o[0]) == channels_first]
        label, view = (chosen or distinct)[0]
        return f"{label} (by its producer)", view
    return distinct[0] if distinct else None


def _op_view(value: np.ndarray, located: Located, shape: tuple[int, ...]) -> np.ndarray | None:
    """A recurrent op's output in Keras' layout: ``Y`` (T, D, B, H) to
    (B, T, D*H); ``Y_h`` (D, B, H) to (B, D*H) (or the layer's one-step
    sequence); with a direction, that direction's alone; a scan's own values."""
    try:
        if located.op_output == "Y":
            if located.direction is not None:
                value = value[:, located.direction : located.direction + 1]
            t, d, b, h = value.shape
            return value.transpose(2, 0, 1, 3).reshape(b, t, d * h)
        if located.op_output == "Y_scan":
            return value.transpose(1, 0, 2)
        if located.op_output == "h_scan":
            return value.reshape(shape)
        if located.direction is None:
            d, b, h = value.shape
            return value.transpose(1, 0, 2).reshape(b, d * h).reshape(shape)
        return value[located.direction].reshape(shape)
    except (ValueError, IndexError):
        return None


def _layouts(value: np.ndarray, shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """Every layout ``value`` may be in, as (label, the value in Keras' layout)."""
    if value.size != int(np.prod(shape)):
        return []
    found = _plain(value, shape, "")
    if len(shape) >= 3:
        batch, time, rest = shape[0], shape[1], shape[2:]
        if value.shape[:2] == (time, batch):  # time-major
            found += _plain(value.swapaxes(0, 1).reshape(batch * time, *value.shape[2:]),
                            (batch * time, *rest), "time-major, ")  # fmt: skip
        elif value.shape[0] == batch * time and batch * time not in (batch, time):
            steps = value.reshape(time, batch, *value.shape[1:]).swapaxes(0, 1)  # folded
            found += _plain(
                steps.reshape(value.shape), (batch * time, *rest), "folded time-major, "
            )
        found = [(label, view.reshape(shape)) for label, view in found]
    return found


def _plain(value: np.ndarray, shape: tuple[int, ...], label: str) -> list[tuple[str, np.ndarray]]:
    """``value`` as ``shape`` as it is, with size-1 axes dropped or added, or channels-first."""

    def same(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return tuple(d for d in a if d != 1) == tuple(d for d in b if d != 1)

    found = []
    if value.shape == shape:
        found.append((label + "same", value))
    elif same(value.shape, shape):
        found.append((label + "size-1 axes", value.reshape(shape)))
    if value.ndim >= 3 and len(shape) >= 2:
        last = (value.shape[0], *value.shape[2:], value.shape[1])  # NC... -> N...C
        if same(last, shape):
            found.append((label + "channels-first", np.moveaxis(value, 1, -1).reshape(shape)))
    return found


def exposed(proto: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``proto`` with ``names`` among its outputs.

    ONNX Runtime does not fuse across a graph output (a ``MatMul`` and its
    ``Add``, a ``Conv`` and its ``Relu``), so the copy may round otherwise
    than the graph: :func:`parity.verify.localise` says so where its outputs
    change."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    present = {value.name for value in copy.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


def exposed_loop(
    proto: onnx.ModelProto, outer: Sequence[str], body: Sequence[str]
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of the loop graph ``proto`` with ``outer`` among its outputs and
    each of ``body``, tensors of its ``Loop`` body, stacked over the steps as
    a scan output; and the output that stacks each body tensor.

    Args:
        proto: a seq2seq bundle's loop graph (:mod:`parity.exporter.loop`).
        outer: tensors of the graph around the ``Loop`` (its encoder part).
        body: tensors of the body (its step part).
    """
    copy = exposed(proto, outer)
    graph = copy.graph
    loop = next(node for node in graph.node if node.op_type == "Loop")
    step = next(a.g for a in loop.attribute if a.name == "body")
    stacked = {}
    for name in dict.fromkeys(body):
        each, stack = EXPOSED_PREFIX + name, EXPOSED_PREFIX + "steps/" + name
        step.node.append(helper.make_node("Identity", [name], [each]))
        step.output.append(helper.make_tensor_value_info(each, onnx.TensorProto.FLOAT, None))
        loop.output.append(stack)
        graph.output.append(onnx.ValueInfoProto(name=stack))
        stacked[name] = stack
    return copy, stacked
