"""The bundle manifest: the contract between the exporter and the runtime.

A bundle is a folder holding ``manifest.json``, one or more ONNX graphs and a
golden-data file. The manifest describes every graph's inputs and outputs (with
symbolic dims named), how the bundle was made, and, for a seq2seq bundle, how
the encoder and the one-step decoder are wired together. This module only
parses and validates; it never touches the graphs themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from parity.runtime.errors import BundleError

FORMAT = "parity-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

Dim = int | str  # a fixed size, or the name of a symbolic (dynamic) axis


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
    padding: str = "post"
    source: str = "Masking"
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
    init: str
    encoder_output: str | None = None


@dataclass(frozen=True)
class Seq2SeqSpec:
    """How the encoder graph and the step graph make a generation.

    ``feedback`` is the rule that turns a step's output into the next step's
    input: "identity" (the output is the next input, as in a regression
    forecaster), "argmax_onehot" or "argmax_token" (softmax over tokens).
    ``start`` says where the first step's input comes from when the caller
    gives none: "last_encoder_step" (the last observed point, as in the sine
    forecaster), "zeros", or "token" (``start_token``, one-hot or id as the
    step input expects). ``steps`` is the horizon the model was made for."""

    encoder_graph: str
    step_graph: str
    encoder_input: str
    step_input: str
    step_output: str
    states: tuple[StateSpec, ...]
    feedback: str
    steps: int
    start: str = "zeros"
    start_token: int | None = None
    stop_token: int | None = None
    loop_graph: str | None = None


@dataclass(frozen=True)
class Manifest:
    format_version: int
    name: str
    kind: str  # "single" or "seq2seq"
    source: dict[str, str]
    opset: int
    versions: dict[str, str]
    graphs: dict[str, GraphSpec]
    golden: dict[str, str] | None = None
    mask: MaskSpec | None = None
    seq2seq: Seq2SeqSpec | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def graph(self, key: str) -> GraphSpec:
        if key not in self.graphs:
            raise BundleError(f"manifest has no graph {key!r} (has: {', '.join(self.graphs)})")
        return self.graphs[key]

    def to_json(self) -> str:
        data = {"format": FORMAT, **asdict(self)}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _by_name(specs: tuple[TensorSpec, ...], name: str, what: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = ", ".join(s.name for s in specs)
    raise BundleError(f"no {what} named {name!r} (has: {names})")


def safe_member(bundle_dir: Path, relative: str) -> Path:
    """Resolve a file named by the manifest, refusing anything outside the bundle."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or not relative:
        raise BundleError(f"{bundle_dir}: manifest names a file outside the bundle: {relative!r}")
    path = (bundle_dir / pure).resolve()
    if bundle_dir.resolve() not in path.parents:
        raise BundleError(f"{bundle_dir}: manifest names a file outside the bundle: {relative!r}")
    return path


def parse_manifest(data: Any, origin: str = "manifest") -> Manifest:
    """Validate a decoded manifest.json and build a :class:`Manifest`."""
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"{origin}: not a parity bundle manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{origin}: manifest format version {version!r} is not supported "
                f"(this parity reads version {FORMAT_VERSION})"
            )
        graphs = {key: _graph(value) for key, value in dict(data["graphs"]).items()}
        if not graphs:
            raise BundleError(f"{origin}: manifest lists no graph")
        mask = MaskSpec(**data["mask"]) if data.get("mask") else None
        seq2seq = None
        if data.get("seq2seq"):
            s = dict(data["seq2seq"])
            s["states"] = tuple(StateSpec(**state) for state in s["states"])
            seq2seq = Seq2SeqSpec(**s)
        manifest = Manifest(
            format_version=version,
            name=str(data["name"]),
            kind=str(data["kind"]),
            source=dict(data["source"]),
            opset=int(data["opset"]),
            versions=dict(data["versions"]),
            graphs=graphs,
            golden=dict(data["golden"]) if data.get("golden") else None,
            mask=mask,
            seq2seq=seq2seq,
            notes=tuple(data.get("notes", ())),
        )
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{origin}: malformed manifest ({type(exc).__name__}: {exc})") from None
    if manifest.kind not in ("single", "seq2seq"):
        raise BundleError(f"{origin}: unknown bundle kind {manifest.kind!r}")
    if (manifest.kind == "seq2seq") != (manifest.seq2seq is not None):
        raise BundleError(f"{origin}: bundle kind {manifest.kind!r} does not match its sections")
    return manifest


def _graph(data: dict[str, Any]) -> GraphSpec:
    return GraphSpec(
        file=str(data["file"]),
        sha256=str(data["sha256"]),
        inputs=tuple(_tensor(t) for t in data["inputs"]),
        outputs=tuple(_tensor(t) for t in data["outputs"]),
        external_data={str(k): str(v) for k, v in dict(data.get("external_data", {})).items()},
    )


def _tensor(data: dict[str, Any]) -> TensorSpec:
    shape = tuple(d if isinstance(d, str) else int(d) for d in data["shape"])
    return TensorSpec(
        name=str(data["name"]), dtype=str(data["dtype"]), shape=shape, domain=data.get("domain")
    )


def read_manifest(bundle_dir: Path) -> Manifest:
    """Read and validate ``bundle_dir/manifest.json``."""
    path = Path(bundle_dir) / MANIFEST_NAME
    if not Path(bundle_dir).is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle folder (no such directory)")
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; is this a parity bundle?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from None
    return parse_manifest(data, origin=str(path))
