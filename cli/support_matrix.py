"""The support matrix: which recurrent layer configurations export right.

Each case is a small Keras model around one recurrent layer configuration.
It is exported and verified against TensorFlow (padded and unpadded where a
mask applies); the row says which ONNX op the layer became (a fused ``LSTM``,
``GRU`` or ``RNN`` op, or a general ``Loop``), the measured errors, or why the
exporter refused it. :func:`write_matrix` (``parity coverage``) writes the
matrix to COVERAGE.md;
the test suite runs the same cases, so every row that says "exports" is
backed by a passing verification. Stateful and streamed models have a table
of their own (:mod:`parity.cli.stream_matrix`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from parity.cli.recurrent_ops import recurrent_ops
from parity.files import check_target, replacing
from parity.runtime.progress import Progress, silent, time_left

FEATURES = 3
UNITS = 4
VOCAB = 9


@dataclass(frozen=True)
class Case:
    layer: str
    options: str
    mask: str  # "none", "Masking" or "Embedding(mask_zero)"
    build: Callable[[], Any]

    @property
    def name(self) -> str:
        return f"{self.layer} {self.options} mask={self.mask}"


@dataclass(frozen=True)
class CoverageRow:
    layer: str
    options: str
    mask: str
    result: str  # "exports", "refused" or "FAILS"
    graph: str  # the recurrent ONNX ops, e.g. "LSTM" or "Loop"
    max_abs: float | None
    rel_l2: float | None
    reason: str = ""


# From this heading on, COVERAGE.md holds what the test suite measures (fault
# injection); regenerating the matrix keeps it.
KEPT_SECTION = "## Fault injection"


def write_matrix(
    output: Path,
    command: str,
    configurations: Sequence[Case] | None = None,
    progress: Progress = silent,
) -> tuple[Any, ...]:
    """Run every case and write the matrix to ``output`` (Markdown), atomically.
    A missing folder is refused before any case runs.

    Args:
        output: the Markdown file to write or replace.
        command: the command line the matrix says regenerates it.
        configurations: the cases to run (None: every one of :func:`cases`,
            then every model form and every streaming case).
        progress: hears each case as it starts: its number of all, its name
            and the time the rest should take at the pace so far.

    Returns:
        The rows of the layer cases, then of the streaming cases.
    """
    output = check_target(output).path  # before any case runs
    from parity.cli.model_forms import form_cases, run_form
    from parity.cli.stream_matrix import run_stream_case, stream_cases

    chosen = list(cases() if configurations is None else configurations)
    forms = list(form_cases() if configurations is None else ())
    streams = list(stream_cases() if configurations is None else ())
    total = len(chosen) + len(forms) + len(streams)
    left = time_left(total)
    rows, form_rows, stream_rows = [], [], []
    with tempfile.TemporaryDirectory(prefix="parity-coverage-") as work:
        for done, item in enumerate([*chosen, *forms, *streams]):
            progress(f"{done + 1}/{total} {item.name}{left(done)}")
            if done < len(chosen):
                rows.append(run_case(item, Path(work)))
            elif done < len(chosen) + len(forms):
                form_rows.append(run_form(item, Path(work)))
            else:
                stream_rows.append(run_stream_case(item, Path(work)))
    kept = ""
    if output.is_file():  # sections measured by other means stay as they are
        text = output.read_text(encoding="utf-8")
        kept = text[text.index(KEPT_SECTION) :] if KEPT_SECTION in text else ""
    markdown = to_markdown(rows, command, form_rows, stream_rows) + ("\n" + kept if kept else "")
    with replacing(output) as stream:
        stream.write(markdown.encode("utf-8"))
    return (*rows, *stream_rows)


def run_case(case: Case, folder: Path | None = None) -> CoverageRow:
    """Export and verify one case (on the CPU, seed 0)."""
    import onnx

    from parity.exporter import export_model
    from parity.runtime.errors import ParityError
    from parity.verify.check import check
    from parity.verify.options import VerifyOptions

    folder = Path(folder or tempfile.mkdtemp(prefix="parity-coverage-"))
    model = case.build()
    bundle = folder / case.name.replace(" ", "_").replace("=", "-").replace("(", "").replace(
        ")", ""
    )
    try:
        export_model(model, bundle)
    except ParityError as exc:
        return CoverageRow(
            case.layer, case.options, case.mask, "refused", "-", None, None, str(exc)
        )
    ops = recurrent_ops(onnx.load(bundle / "model.onnx"))
    report = check(bundle, model, VerifyOptions(device="cpu", batches=(1, 4), times=(6,)))
    compared = [c for c in report.checks if c.kind == "output"]  # TensorFlow against ONNX
    result, reason = _verdict(report)
    return CoverageRow(
        case.layer,
        case.options,
        case.mask,
        result,
        ops,
        max(c.max_abs for c in compared),
        max(c.rel_l2 for c in compared),
        reason,
    )


def _verdict(report: Any) -> tuple[str, str]:
    """ "exports" when every check passes; when ONNX Runtime agrees with
    TensorFlow everywhere but TensorFlow itself is not padding-invariant, the
    graph is right and Keras is what ignores the mask."""
    if report.passed:
        return "exports", ""
    keras_not_invariant = any(c.name.startswith("tensorflow:") for c in report.failures)
    if keras_not_invariant and all(c.kind == "padding" for c in report.failures):
        return "exports", (
            "Keras itself ignores the mask here (padding changes its result); "
            "the graph computes what Keras computes"
        )
    return "FAILS", "; ".join(c.name for c in report.failures[:3])


def to_markdown(
    rows: list[CoverageRow], command: str, form_rows: Sequence = (), stream_rows: Sequence = ()
) -> str:
    """The matrix as Markdown: the layer table, the model-forms table, then
    the streaming table."""
    from parity.cli.model_forms import forms_markdown
    from parity.cli.stream_matrix import stream_markdown

    lines = [
        "# Conversion coverage",
        "",
        "Each row is a small model around one recurrent layer configuration, exported",
        "with parity and verified against TensorFlow on the CPU (batches 1 and 4,",
        "time lengths 6 and the masked checks: padded batches with lengths 1 to full",
        "and an all-padding row, rows alone, longer padding, pre-padding). `graph` is",
        "the ONNX op the recurrent layer became. Errors are the largest between",
        "TensorFlow and ONNX Runtime over all outputs and inputs. Regenerate with:",
        "",
        f"    {command}",
        "",
        "| layer | options | mask | result | graph | max abs | rel L2 | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        max_abs = "-" if row.max_abs is None else f"{row.max_abs:.1e}"
        rel_l2 = "-" if row.rel_l2 is None else f"{row.rel_l2:.1e}"
        note = row.reason.replace("|", "/")
        lines.append(
            f"| {row.layer} | {row.options} | {row.mask} | {row.result} | {row.graph} | "
            f"{max_abs} | {rel_l2} | {note} |"
        )
    if form_rows:
        lines += ["", *forms_markdown(list(form_rows))]
    if stream_rows:
        lines += ["", *stream_markdown(list(stream_rows))]
    return "\n".join(lines) + "\n"


# --- the cases -------------------------------------------------------------------


def _sequence_model(make_layer: Callable[[], Any], mask: str = "none", time: int | None = None):
    import keras

    keras.utils.set_random_seed(0)
    if mask == "Embedding(mask_zero)":
        x = keras.Input((time,), dtype="int32", name="tokens")
        h = keras.layers.Embedding(VOCAB, FEATURES, mask_zero=True)(x)
    else:
        x = keras.Input((time, FEATURES), name="sequence")
        h = keras.layers.Masking(0.0)(x) if mask == "Masking" else x
    outputs = make_layer()(h)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    return keras.Model(x, list(outputs))


def _layer(kind: str, **options: Any) -> Callable[[], Any]:
    def make():
        import keras

        classes = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU,
                   "SimpleRNN": keras.layers.SimpleRNN}  # fmt: skip
        return classes[kind](UNITS, name="rnn", **options)

    return make


def _with_initial_state(kind: str, mask: str) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((None, FEATURES), name="sequence")
    h = keras.layers.Masking(0.0)(x) if mask == "Masking" else x
    count = 2 if kind == "LSTM" else 1
    states = [keras.Input((UNITS,), name=f"state_{i}") for i in range(count)]
    layer = _layer(kind, return_sequences=True, return_state=True)()
    return keras.Model([x, *states], list(layer(h, initial_state=states)))


def _bidirectional(merge_mode: str | None, mask: str, **options: Any) -> Any:
    def make():
        import keras

        return keras.layers.Bidirectional(
            keras.layers.LSTM(UNITS, **options), merge_mode=merge_mode, name="rnn"
        )

    return _sequence_model(make, mask)


def _case(layer: str, options: str, mask: str, kind: str, **config: Any) -> Case:
    """A case of one plain recurrent layer of ``kind`` with ``config``."""
    time = config.pop("time", None)
    return Case(layer, options, mask, partial(_sequence_model, _layer(kind, **config), mask, time))


def cases() -> list[Case]:
    """Every configuration the matrix covers."""
    found: list[Case] = []
    kinds = {
        "LSTM": ("LSTM", {}),
        "GRU": ("GRU", {"reset_after": True}),
        "GRU(reset_after=False)": ("GRU", {"reset_after": False}),
        "SimpleRNN": ("SimpleRNN", {}),
    }
    returns = {
        "last output": {},
        "return_sequences": {"return_sequences": True},
        "return_state": {"return_state": True},
        "return_sequences+return_state": {"return_sequences": True, "return_state": True},
    }
    for label, (kind, base) in kinds.items():
        for option, extra in returns.items():
            found.append(_case(label, option, "none", kind, **base, **extra))
        for mask in ("Masking", "Embedding(mask_zero)"):
            found.append(
                _case(label, "return_sequences", mask, kind, return_sequences=True, **base)
            )
        found.append(_case(label, "go_backwards", "Masking", kind, go_backwards=True, **base))
    for label, (kind, base) in kinds.items():
        activations = {"activation": "relu"}
        if kind != "SimpleRNN":
            activations["recurrent_activation"] = "hard_sigmoid"
        options = {
            "use_bias=False": {"use_bias": False},
            ", ".join(f"{key}={value}" for key, value in activations.items()): activations,
            "dropout=0.3, recurrent_dropout=0.3": {"dropout": 0.3, "recurrent_dropout": 0.3},
        }
        if kind == "LSTM":
            options["go_backwards"] = {"go_backwards": True}
            options["unroll=True (fixed time 6)"] = {"unroll": True, "time": 6}
        for option, extra in options.items():
            found.append(_case(label, option, "none", kind, return_sequences=True, **base, **extra))
    for kind in ("LSTM", "GRU"):
        for mask in ("none", "Masking"):
            build = partial(_with_initial_state, kind, mask)
            found.append(Case(kind, "initial_state from inputs", mask, build))
    for merge_mode in ("concat", "sum", "mul", "ave", None):
        build = partial(_bidirectional, merge_mode, "Masking", return_sequences=True)
        options = f"merge_mode={merge_mode}, return_sequences"
        found.append(Case("Bidirectional(LSTM)", options, "Masking", build))
    build = partial(_bidirectional, "concat", "none", return_state=True)
    found.append(Case("Bidirectional(LSTM)", "return_state", "none", build))
    return found
