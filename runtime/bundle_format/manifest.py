"""The bundle manifest: the contract between the exporter and the runtime.

A bundle is a folder holding ``manifest.json``, one or more ONNX graphs and a
golden-data file. The manifest describes every graph's inputs and outputs (with
symbolic dims named), how the bundle was made, and, for a seq2seq bundle, how
the encoder and the one-step decoder are wired together. This module only
parses and validates; it never touches the graphs themselves.

The format is written down once, as a JSON Schema shipped beside this module
(``manifest.schema.json``), which an app in any language can validate a
manifest with. The reader takes from it every object's fields, every
vocabulary and every limit, and checks on top what a schema cannot say: that
names point at graphs and tensors that exist, and that values are consistent.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from parity.runtime.bundle_format.streaming import StreamSpec, parse_streaming
from parity.runtime.errors import BundleError, quoted
from parity.runtime.paths import as_path, regular_file, resolved, shortened

FORMAT = "parity-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_NAME = "manifest.schema.json"
# The format's JSON Schema: fields, vocabularies and limits come from it.
SCHEMA: dict[str, Any] = json.loads(
    importlib.resources.files(__package__).joinpath(SCHEMA_NAME).read_text(encoding="utf-8")
)
_DEFS = SCHEMA["$defs"]

Dim = int | str  # a fixed size, or the name of a symbolic (dynamic) axis

# The vocabularies of the format, for type checkers; the values a manifest
# may hold are the schema's (a test holds these to it).
Kind = Literal["single", "seq2seq"]
Feedback = Literal["identity", "argmax_onehot", "argmax_token"]
Start = Literal["last_encoder_step", "zeros", "token"]
Init = Literal["encoder", "zeros"]
Padding = Literal["post", "pre"]
MaskSource = Literal["Masking", "Embedding"]
# How a seq2seq model was written: a decoder fed the target sequence at once
# (teacher forcing), the same with attention over the encoder's sequence, or a
# decoder unrolled by hand, one call per output step.
SourceForm = Literal["teacher_forcing", "attention", "unrolled"]
DomainKind = Literal["uniform", "tokens"]
DTYPES = tuple(_DEFS["dtype"]["enum"])

# Limits on what a manifest may declare, from the schema: far above any real
# model, low enough that nothing is allocated from a hostile manifest's numbers.
MAX_STEPS = _DEFS["seq2seq"]["properties"]["steps"]["maximum"]  # generation steps
MAX_DIM = _DEFS["dim"]["oneOf"][0]["maximum"]  # a fixed axis or a state size
MAX_RANK = _DEFS["tensor"]["properties"]["shape"]["maxItems"]
MAX_NAME = _DEFS["name"]["maxLength"]
MAX_MANIFEST_BYTES = 16 << 20


def vocabulary(definition: str, field_name: str) -> tuple[Any, ...]:
    """The values the schema allows for ``field_name`` of the object
    ``definition`` ("manifest" for the top level, else a name under ``$defs``)."""
    return tuple(_object(definition)["properties"][field_name]["enum"])


def _object(definition: str) -> dict[str, Any]:
    return SCHEMA if definition == "manifest" else _DEFS[definition]


def _domain_variant(kind: str) -> dict[str, Any]:
    return next(v for v in _DEFS["domain"]["oneOf"] if v["properties"]["kind"]["const"] == kind)


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. ``shape`` holds ints for fixed dims and names
    ("batch", "time", ...) for dynamic ones. ``domain`` says which values make
    sense for an input: ``{"kind": "uniform", "low": 0.0, "high": 1.0}`` or
    ``{"kind": "tokens", "vocab": 1000}``; it is ``None`` for outputs."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    domain: dict[str, Any] | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the bundle, with its hash and its signature.

    ``external_data`` maps every file the graph reads its weights from (ONNX
    external data, relative to the bundle) to its sha256; a graph that reads a
    file not listed there is refused when the bundle is loaded."""

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    external_data: dict[str, str] = field(default_factory=dict)

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, f"input of {self.file}")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, f"output of {self.file}")


@dataclass(frozen=True)
class MaskSpec:
    """A masked input: time steps whose features all equal ``value`` are skipped.
    ``padding`` is the padding the model was trained on ("post" or "pre");
    ``fused`` tells whether the exported graph uses ONNX's fused recurrent op
    with ``sequence_lens`` (True) or the general masked graph (False)."""

    input: str
    value: float
    padding: Padding = "post"
    source: MaskSource = "Masking"
    fused: bool = False


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state carried between decoder steps.

    ``step_input``/``step_output`` are its names in the step graph;
    ``init`` is "encoder" (taken from ``encoder_output`` of the encoder graph)
    or "zeros"."""

    name: str
    layer: str
    kind: str  # "h", "c" (LSTM) or "h" (GRU, SimpleRNN)
    size: int
    step_input: str
    step_output: str
    init: Init
    encoder_output: str | None = None


@dataclass(frozen=True)
class MemorySpec:
    """A tensor the encoder computes once and the decoder reads, unchanged, at
    every step (the sequence an attention layer attends to).

    ``encoder_output`` is its name in the encoder graph, ``step_input`` in
    the step graph."""

    name: str
    encoder_output: str
    step_input: str


@dataclass(frozen=True)
class Seq2SeqSpec:
    """How the encoder graph and the step graph make a generation.

    ``feedback`` is the rule that turns a step's output into the next step's
    input: "identity" (the output is the next input, as in a regression
    forecaster), "argmax_onehot" or "argmax_token" (softmax over tokens).
    ``start`` says where the first step's input comes from when the caller
    gives none: "last_encoder_step" (the last observed point, as in the sine
    forecaster), "zeros", or "token" (``start_token``, one-hot or id as the
    step input expects). ``steps`` is the horizon the model was made for.
    ``form`` is how the source model was written (see :data:`SourceForm`);
    ``memories`` are what the step graph reads from the encoder besides the
    states."""

    encoder_graph: str
    step_graph: str
    encoder_input: str
    step_input: str
    step_output: str
    states: tuple[StateSpec, ...]
    feedback: Feedback
    steps: int
    start: Start = "zeros"
    start_token: int | None = None
    stop_token: int | None = None
    loop_graph: str | None = None
    form: SourceForm = "teacher_forcing"
    memories: tuple[MemorySpec, ...] = ()


@dataclass(frozen=True)
class Manifest:
    format_version: int
    name: str
    kind: Kind
    source: dict[str, str]
    opset: int
    versions: dict[str, str]
    graphs: dict[str, GraphSpec]
    golden: dict[str, str] | None = None
    mask: MaskSpec | None = None
    seq2seq: Seq2SeqSpec | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the golden data again in ONNX's test-data layout: each file's sha256
    test_data: dict[str, str] = field(default_factory=dict)
    streaming: StreamSpec | None = None  # a stream bundle (bundle_format.streaming)

    def graph(self, key: str) -> GraphSpec:
        if key not in self.graphs:
            has = ", ".join(self.graphs)
            raise BundleError(f"manifest has no graph {_brief(key)} (has: {has})")
        return self.graphs[key]

    def to_json(self) -> str:
        data = {"format": FORMAT, **asdict(self)}
        if data["streaming"] is None:  # so that a parity without streams reads the bundle
            del data["streaming"]
        return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _by_name(specs: tuple[TensorSpec, ...], name: str, what: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = ", ".join(s.name for s in specs)
    raise BundleError(f"no {what} named {_brief(name)} (has: {names})")


def safe_member(bundle_dir: Path, relative: str) -> Path:
    """Resolve a file named by the manifest, refusing anything outside the bundle."""
    if not isinstance(relative, str) or "\x00" in relative:
        raise BundleError(f"{bundle_dir}: manifest names a file that is no path: {relative!r}")
    outside = f"{bundle_dir}: manifest names a file outside the bundle: {_brief(relative)}"
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or not relative:
        raise BundleError(outside)
    path = resolved(bundle_dir / pure, BundleError)
    if resolved(bundle_dir, BundleError) not in path.parents:
        raise BundleError(outside)
    return path


class _Schema:
    """Reads one decoded manifest, field by field, naming the first field that
    is wrong: every value is checked for type and range before it is used."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, what: str) -> BundleError:
        return BundleError(f"{self.origin}: {where}: {what}")

    def fields(self, data: Any, where: str, definition: str | dict[str, Any]) -> dict:
        """``data`` once it is an object with the fields the schema's object
        ``definition`` (a name, or the object itself) requires, and no others."""
        node = _object(definition) if isinstance(definition, str) else definition
        required = set(node.get("required", ()))
        optional = set(node.get("properties", ())) - required
        if not isinstance(data, dict):
            raise self.fail(where, f"expected an object, got {_kind_of(data)}")
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(where, f"missing field {_brief(missing[0])}")
        unknown = sorted(set(data) - required - optional)
        if unknown:
            raise self.fail(where, f"unknown field {_brief(unknown[0])}")
        return data

    def text(self, value: Any, where: str, *, name: bool = False) -> str:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise self.fail(where, f"expected a non-empty string, got {_kind_of(value)}")
        if name and len(value) > MAX_NAME:
            raise self.fail(where, f"a name longer than {MAX_NAME} characters")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {_kind_of(value)}")
        if not low <= value <= high:
            raise self.fail(where, f"{_shown(value)} is out of range [{low}, {high}]")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {_kind_of(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(where, f"expected a finite number, got {_shown(value)}")
        return number

    def choice(self, value: Any, where: str, allowed: tuple[Any, ...]) -> Any:
        if not isinstance(value, str | int) or isinstance(value, bool) or value not in allowed:
            raise self.fail(where, f"{_brief(value)} is not one of {', '.join(allowed)}")
        return value

    def strings(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(where, "expected an object of strings")
        return dict(value)

    def digest(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise self.fail(where, "expected a sha256 (64 hex digits)")
        return value

    def file(self, value: Any, where: str) -> str:
        relative = self.text(value, where)
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or "\\" in relative:
            raise self.fail(where, f"names a file outside the bundle: {_brief(relative)}")
        return relative

    def tensor(self, data: Any, where: str, *, with_domain: bool) -> TensorSpec:
        data = self.fields(data, where, "tensor")
        name = self.text(data["name"], f"{where}.name", name=True)
        dtype = self.choice(data["dtype"], f"{where}.dtype", DTYPES)
        shape = data["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            raise self.fail(f"{where}.shape", f"expected a list of at most {MAX_RANK} dims")
        dims: list[Dim] = []
        for axis, dim in enumerate(shape):
            if isinstance(dim, str):
                if not _AXIS_NAME.fullmatch(dim):
                    raise self.fail(f"{where}.shape[{axis}]", f"{_brief(dim)} is no axis name")
                dims.append(dim)
            else:
                dims.append(self.integer(dim, f"{where}.shape[{axis}]", 1, MAX_DIM))
        domain = data.get("domain")
        if domain is not None:
            if not with_domain:
                raise self.fail(f"{where}.domain", "an output has no value domain")
            domain = self.domain(domain, f"{where}.domain")
        return TensorSpec(name=name, dtype=dtype, shape=tuple(dims), domain=domain)

    def domain(self, data: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, f"expected an object, got {_kind_of(data)}")
        kinds = tuple(v["properties"]["kind"]["const"] for v in _DEFS["domain"]["oneOf"])
        kind = self.choice(data.get("kind"), f"{where}.kind", kinds)
        self.fields(data, where, _domain_variant(kind))
        if kind == "tokens":
            self.integer(data["vocab"], f"{where}.vocab", 1, MAX_DIM)
        else:
            low = self.number(data["low"], f"{where}.low")
            if self.number(data["high"], f"{where}.high") < low:
                raise self.fail(where, "high is below low")
        return dict(data)

    def tensors(self, data: Any, where: str, *, with_domain: bool) -> tuple[TensorSpec, ...]:
        if not isinstance(data, list) or not data:
            raise self.fail(where, "expected a non-empty list")
        specs = tuple(
            self.tensor(item, f"{where}[{i}]", with_domain=with_domain)
            for i, item in enumerate(data)
        )
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise self.fail(where, "two tensors share a name")
        return specs

    def graph(self, data: Any, where: str) -> GraphSpec:
        data = self.fields(data, where, "graph")
        external = self.strings(data.get("external_data", {}), f"{where}.external_data")
        for relative, digest in external.items():
            self.file(relative, f"{where}.external_data")
            self.digest(digest, f"{where}.external_data[{_brief(relative)}]")
        return GraphSpec(
            file=self.file(data["file"], f"{where}.file"),
            sha256=self.digest(data["sha256"], f"{where}.sha256"),
            inputs=self.tensors(data["inputs"], f"{where}.inputs", with_domain=True),
            outputs=self.tensors(data["outputs"], f"{where}.outputs", with_domain=False),
            external_data=external,
        )

    def mask(self, data: Any, graphs: dict[str, GraphSpec]) -> MaskSpec:
        data = self.fields(data, "mask", "mask")
        name = self.text(data["input"], "mask.input")
        if not any(spec.name == name for g in graphs.values() for spec in g.inputs):
            raise self.fail("mask.input", f"{_brief(name)} names no graph input")
        fused = data.get("fused", False)
        if not isinstance(fused, bool):
            raise self.fail("mask.fused", f"expected true or false, got {_kind_of(fused)}")
        return MaskSpec(
            input=name,
            value=self.number(data["value"], "mask.value"),
            padding=self.choice(
                data.get("padding", "post"), "mask.padding", vocabulary("mask", "padding")
            ),
            source=self.choice(
                data.get("source", "Masking"), "mask.source", vocabulary("mask", "source")
            ),
            fused=fused,
        )

    def seq2seq(self, data: Any, graphs: dict[str, GraphSpec]) -> Seq2SeqSpec:
        data = self.fields(data, "seq2seq", "seq2seq")

        def graph_key(field_name: str) -> str:
            key = self.text(data[field_name], f"seq2seq.{field_name}")
            if key not in graphs:
                raise self.fail(f"seq2seq.{field_name}", f"{_brief(key)} names no graph")
            return key

        encoder = graphs[graph_key("encoder_graph")]
        step = graphs[graph_key("step_graph")]
        loop = graph_key("loop_graph") if data.get("loop_graph") is not None else None
        self.member(data["encoder_input"], encoder.inputs, "seq2seq.encoder_input")
        self.member(data["step_input"], step.inputs, "seq2seq.step_input")
        self.member(data["step_output"], step.outputs, "seq2seq.step_output")
        states = data["states"]
        if not isinstance(states, list) or not states:
            raise self.fail("seq2seq.states", "expected a non-empty list")
        start = self.choice(
            data.get("start", "zeros"), "seq2seq.start", vocabulary("seq2seq", "start")
        )
        tokens = {}
        for name in ("start_token", "stop_token"):
            value = data.get(name)
            tokens[name] = (
                None if value is None else self.integer(value, f"seq2seq.{name}", 0, MAX_DIM)
            )
        if start == "token" and tokens["start_token"] is None:
            raise self.fail("seq2seq.start_token", "the start rule 'token' needs a start token")
        return Seq2SeqSpec(
            encoder_graph=data["encoder_graph"],
            step_graph=data["step_graph"],
            encoder_input=data["encoder_input"],
            step_input=data["step_input"],
            step_output=data["step_output"],
            states=tuple(
                self.state(item, f"seq2seq.states[{i}]", encoder, step)
                for i, item in enumerate(states)
            ),
            feedback=self.choice(
                data["feedback"], "seq2seq.feedback", vocabulary("seq2seq", "feedback")
            ),
            steps=self.integer(data["steps"], "seq2seq.steps", 1, MAX_STEPS),
            start=start,
            loop_graph=loop,
            form=self.choice(
                data.get("form", "teacher_forcing"), "seq2seq.form", vocabulary("seq2seq", "form")
            ),
            memories=self.memories(data.get("memories", []), encoder, step),
            **tokens,
        )

    def memories(self, data: Any, encoder: GraphSpec, step: GraphSpec) -> tuple[MemorySpec, ...]:
        if not isinstance(data, list):
            raise self.fail("seq2seq.memories", "expected a list")
        found = []
        for index, item in enumerate(data):
            where = f"seq2seq.memories[{index}]"
            item = self.fields(item, where, "memory")
            found.append(
                MemorySpec(
                    name=self.text(item["name"], f"{where}.name", name=True),
                    encoder_output=self.member(
                        item["encoder_output"], encoder.outputs, f"{where}.encoder_output"
                    ),
                    step_input=self.member(item["step_input"], step.inputs, f"{where}.step_input"),
                )
            )
        return tuple(found)

    def state(self, data: Any, where: str, encoder: GraphSpec, step: GraphSpec) -> StateSpec:
        data = self.fields(data, where, "state")
        init = self.choice(data["init"], f"{where}.init", vocabulary("state", "init"))
        encoder_output = data.get("encoder_output")
        if init == "encoder":
            self.member(encoder_output, encoder.outputs, f"{where}.encoder_output")
        elif encoder_output is not None:
            raise self.fail(f"{where}.encoder_output", "a state from zeros has no encoder output")
        return StateSpec(
            name=self.text(data["name"], f"{where}.name", name=True),
            layer=self.text(data["layer"], f"{where}.layer", name=True),
            kind=self.text(data["kind"], f"{where}.kind", name=True),
            size=self.integer(data["size"], f"{where}.size", 1, MAX_DIM),
            step_input=self.member(data["step_input"], step.inputs, f"{where}.step_input"),
            step_output=self.member(data["step_output"], step.outputs, f"{where}.step_output"),
            init=init,
            encoder_output=encoder_output,
        )

    def member(self, value: Any, specs: tuple[TensorSpec, ...], where: str) -> str:
        name = self.text(value, where)
        if not any(spec.name == name for spec in specs):
            raise self.fail(where, f"{_brief(name)} names no tensor of that graph")
        return name


_SHA256 = re.compile(r"[0-9a-f]{64}")
_AXIS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _brief(value: Any) -> str:
    """``value`` quoted for a message, cut when long: a manifest's strings and
    keys may be of any length, its lists of any depth."""
    try:
        return shortened(repr(value))
    except RecursionError:
        return _kind_of(value)


def _shown(value: int | float) -> str:
    """A number for a message: one of hundreds of digits by its length."""
    if isinstance(value, int) and abs(value) >= 10**20:
        return f"an integer of {len(str(abs(value)))} digits"
    return str(value)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a manifest with one key
    twice (where ``json`` would keep the last) is refused."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {twice[:100]!r} appears twice in one object")
    return data


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def parse_manifest(data: Any, origin: str = "manifest") -> Manifest:
    """Validate a decoded manifest.json against the format's one schema and build
    a :class:`Manifest`.

    Args:
        data: the decoded JSON.
        origin: what the data came from (a path), for error messages.

    Raises:
        BundleError: naming the first field that is missing, unknown, of the
            wrong type, out of range, or naming a graph or tensor that is not there.
    """
    schema = _Schema(origin)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{origin}: not a parity bundle manifest")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{origin}: manifest format version {_brief(version)} is not supported "
            f"(this parity reads version {FORMAT_VERSION})"
        )
    schema.fields(data, "manifest", "manifest")
    raw_graphs = data["graphs"]
    if not isinstance(raw_graphs, dict) or not raw_graphs:
        raise schema.fail("graphs", "expected a non-empty object of graphs")
    graphs = {
        schema.text(key, "graphs", name=True): schema.graph(value, f"graphs.{key}")
        for key, value in raw_graphs.items()
    }
    golden = data.get("golden")
    if golden is not None:
        schema.fields(golden, "golden", "golden")
        golden = {
            "file": schema.file(golden["file"], "golden.file"),
            "sha256": schema.digest(golden["sha256"], "golden.sha256"),
        }
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise schema.fail("notes", "expected a list of strings")
    kind = schema.choice(data["kind"], "kind", vocabulary("manifest", "kind"))
    test_data = schema.strings(data.get("test_data", {}), "test_data")
    for relative, digest in test_data.items():
        schema.file(relative, "test_data")
        schema.digest(digest, f"test_data[{_brief(relative)}]")
    seq2seq = data.get("seq2seq")
    if (kind == "seq2seq") != (seq2seq is not None):
        raise BundleError(f"{origin}: bundle kind {_brief(kind)} does not match its sections")
    return Manifest(
        format_version=version,
        name=schema.text(data["name"], "name"),
        kind=kind,
        source=schema.strings(data["source"], "source"),
        opset=schema.integer(
            data["opset"],
            "opset",
            SCHEMA["properties"]["opset"]["minimum"],
            SCHEMA["properties"]["opset"]["maximum"],
        ),
        versions=schema.strings(data["versions"], "versions"),
        graphs=graphs,
        golden=golden,
        mask=schema.mask(data["mask"], graphs) if data.get("mask") is not None else None,
        seq2seq=schema.seq2seq(seq2seq, graphs) if seq2seq is not None else None,
        notes=tuple(notes),
        test_data=test_data,
        streaming=(
            parse_streaming(schema, data["streaming"], graphs, MAX_DIM)
            if data.get("streaming") is not None
            else None
        ),
    )


def read_manifest(bundle_dir: Path) -> Manifest:
    """Read and validate ``bundle_dir/manifest.json``.

    Args:
        bundle_dir: the bundle folder.

    Raises:
        BundleError: the folder is missing or is a file, the manifest is
            missing, a link out of the bundle, too large, unreadable, or does
            not fit the schema.
    """
    bundle_dir = as_path(bundle_dir, "bundle")
    folder = resolved(bundle_dir, BundleError)
    if folder.is_file():
        hint = " (a Keras model? the bundle comes second)" if bundle_dir.suffix else ""
        raise BundleError(f"{bundle_dir}: is a file, expected a bundle folder{hint}")
    if not folder.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle folder (no such directory)")
    path = bundle_dir / MANIFEST_NAME
    if not os.path.lexists(path):
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; is this a parity bundle?")
    if path.is_symlink() or resolved(path, BundleError).parent != folder:
        raise BundleError(f"{path}: is a link out of the bundle; refused")
    regular_file(path, "manifest", BundleError)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; refused")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: also an int of 5,000 digits
        raise BundleError(f"{path}: unreadable manifest ({quoted(exc)})") from None
    return parse_manifest(data, origin=str(path))
