"""What a localisation found (:mod:`verify.localise`): a row per layer output
in each graph and step, the first divergent one, and how the report's table
and JSON show them. Plain data, with no dependency on either runtime."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from parity.verify.terminal import MAX_WIDTH, columns, paragraphs


@dataclass(frozen=True)
class LayerRow:
    """One output of one layer call in one graph (at one generation step).

    ``status`` is "agrees", "diverges", or "no tensor (folded into X)" where
    the layer has no tensor of its own in the graph and X is the next layer
    that has one. ``error``, ``noise_floor``, ``ratio`` and ``limit`` are those
    of :class:`parity.verify.compare.Check` (the allclose rule's where float64
    did not run: no ``noise_floor``, limit 1)."""

    graph: str  # the manifest's graph key: "model", "encoder", "step", "loop"
    step: int | None  # the generation step; None for a graph run once (the loop's encoder part)
    layer: str
    kind: str  # the Keras class, e.g. "LSTM", "TimeDistributed(Conv2D)"
    output: int  # which output of the layer call (1, 2, ...: states)
    onnx_tensor: str | None
    mapped_by: str  # "graph output", "tf name", "recurrent op", "scope" or "-"
    layout: str  # how the ONNX value was brought to Keras' layout
    error: float | None
    noise_floor: float | None
    ratio: float | None
    limit: float | None
    status: str
    note: str = ""

    @property
    def where(self) -> str:
        """The graph and step in words."""
        if self.step is None:
            return f"{self.graph} graph" + (", encoder part" if self.graph == "loop" else "")
        loop = " (step loop)" if self.graph == "step" else ""
        return f"{self.graph} graph{loop}, generation step {self.step}"


@dataclass(frozen=True)
class Localisation:
    """Where ONNX Runtime first leaves TensorFlow: every layer output's row,
    in the order the graphs run and the model calls its layers; ``reason``
    says why the localisation could not run ("" when it ran), ``seconds``
    what it cost."""

    rows: tuple[LayerRow, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    reason: str = ""

    @property
    def first(self) -> LayerRow | None:
        """The first divergent row."""
        return next((row for row in self.rows if row.status == "diverges"), None)

    @property
    def first_divergent_layer(self) -> str | None:
        """The first divergent row's layer; None when every layer output agrees."""
        return self.first and self.first.layer

    @property
    def graph(self) -> str | None:
        """The graph (the manifest's key) of the first divergent row."""
        return self.first and self.first.graph

    @property
    def step(self) -> int | None:
        """The generation step of the first divergent row (None: a graph run once)."""
        return self.first and self.first.step

    @property
    def agreeing_before(self) -> tuple[str, ...]:
        """The layers before the first divergent one, in its graph and step, that agree."""
        first = self.first
        if first is None:
            return ()
        before: list[str] = []
        for row in self.rows:
            if (row.graph, row.step) != (first.graph, first.step):
                continue
            if row is first:
                break
            if row.status == "agrees" and row.layer not in before:
                before.append(row.layer)
        return tuple(before)

    def summary(self) -> str:
        """One line: the first divergent layer and its numbers, or that there is none."""
        if self.reason:
            return f"localisation could not run: {self.reason}"
        first = self.first
        if first is None:
            compared = sum(row.error is not None for row in self.rows)
            return f"no divergent layer: {compared} layer outputs agree with TensorFlow"
        if first.noise_floor is None:
            numbers = f"error {first.error:.3g} is {first.ratio:.3g} times its allclose tolerance"
        else:
            numbers = (
                f"error against float64 {first.error:.3g} is {first.ratio:.3g} times its noise "
                f"floor {first.noise_floor:.3g} (limit {first.limit:g})"
            )
        output = f" output {first.output}" if first.output else ""
        before = ", ".join(self.agreeing_before) or "none"
        return (
            f"first divergent layer {first.layer!r} ({first.kind}){output} in the {first.where}: "
            f"{numbers}; agreeing before it: {before}"
        )

    def lines(self, width: int = MAX_WIDTH) -> list[str]:
        """The report table's lines, each at most ``width`` characters: the
        summary, then the rows of the divergent graph and step up to the
        first divergent one (every row is in the JSON report).

        Args:
            width: the widest line.
        """
        prose = [f"localisation ({self.seconds:.2f} s): {self.summary()}"]
        first = self.first
        lines: list[str] = []
        if first is not None:
            shown = [r for r in self.rows[: self.rows.index(first) + 1]
                     if (r.graph, r.step) == (first.graph, first.step)]  # fmt: skip
            header = ("layer (onnx tensor)", "error", "noise", "ratio", "status")
            rows = [
                (f"{r.layer}{f' output {r.output}' if r.output else ''} ({r.onnx_tensor or '-'})",
                 _number(r.error), _number(r.noise_floor),
                 "-" if r.ratio is None else f"{r.ratio:.2g}", r.status)
                for r in shown
            ]  # fmt: skip
            lines = ["  " + line for line in columns(header, rows, width - 2, frozenset({1, 2, 3}))]
            later = len(self.rows) - self.rows.index(first) - 1
            if later:
                lines.append(f"  {later} more layer outputs after it (in the JSON report)")
        notes = [f"  note: {note}" for note in self.notes]
        return paragraphs(prose, width) + lines + paragraphs(notes, width)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's ``localisation``: the fields, and the first
        divergent row's numbers at the top."""
        first = self.first
        return {
            "first_divergent_layer": self.first_divergent_layer,
            "graph": self.graph,
            "step": self.step,
            "error": first and first.error,
            "noise_floor": first and first.noise_floor,
            "ratio": first and first.ratio,
            "limit": first and first.limit,
            "agreeing_before": list(self.agreeing_before),
            "seconds": self.seconds,
            "reason": self.reason,
            "notes": list(self.notes),
            "rows": [dataclasses.asdict(row) for row in self.rows],
        }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"
