"""The support matrix's streaming part: stateful and streamed recurrent models.

Each configuration is a small model built twice: with every recurrent layer
``stateful=True`` at batch 3, and stateless, exported with ``--streaming``.
Both are exported as stream bundles and verified chunk by chunk against
Keras on the CPU (:mod:`parity.verify.stream`). A row gives the ONNX ops the
recurrent layers became, the largest difference between ONNX Runtime and
Keras over every chunk of every chunking, the largest ratio to the noise
floor, and the largest difference between a chunked run and one call in
either runtime alone (valid steps and states). Models that cannot stream are
listed with the reason parity gives. The test suite runs the same cases.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

FEATURES = 5
UNITS = 8
BATCH = 3
# Weights moved this far (standard deviation) from their initial values, so
# that the states move and a wrong state shows.
SPREAD = 0.3


@dataclass(frozen=True)
class StreamCase:
    """One model: ``layers`` in words; ``source`` "stateful", "streaming",
    or "refused" for a model that must not stream (its reason is the row's)."""

    layers: str
    source: str
    build: Callable[[], Any]

    @property
    def name(self) -> str:
        return f"{self.layers} ({self.source})"


@dataclass(frozen=True)
class StreamRow:
    layers: str
    source: str
    result: str  # "exports", "refused" or "FAILS"
    graph: str
    max_abs: float | None
    ratio: float | None
    invariance: float | None
    note: str = ""


def stream_cases() -> list[StreamCase]:
    """Every streaming configuration of the matrix."""
    found = []
    for layers, build in _MODELS.items():
        for source in ("stateful", "streaming"):
            found.append(StreamCase(layers, source, partial(build, source == "stateful")))
    for label in _REFUSED:
        found.append(StreamCase(label, "refused", partial(_refused, label)))
    return found


def run_stream_case(case: StreamCase, folder: Path | None = None) -> StreamRow:
    """Export and verify one case (on the CPU, seed 0, batch 3, 10 steps)."""
    import onnx

    from parity.cli.recurrent_ops import recurrent_ops
    from parity.exporter import export_model
    from parity.runtime.errors import ParityError
    from parity.verify.check import check
    from parity.verify.options import VerifyOptions

    folder = Path(folder or tempfile.mkdtemp(prefix="parity-coverage-"))
    bundle = folder / re.sub(r"\W+", "_", f"stream {case.source} {case.layers}")
    model = case.build()
    try:
        export_model(model, bundle, streaming=case.source == "streaming")
    except ParityError as exc:
        return StreamRow(case.layers, case.source, "refused", "-", None, None, None, str(exc))
    ops = recurrent_ops(onnx.load(bundle / "stream.onnx"))
    report = check(bundle, model, VerifyOptions(device="cpu", batches=(BATCH,), times=(10,)))
    streamed = [c for c in report.checks if c.kind == "stream"]
    invariance = [c for c in report.checks if c.kind == "stream-invariance"]
    return StreamRow(
        case.layers,
        case.source,
        "exports" if report.passed else "FAILS",
        ops,
        max(c.max_abs for c in streamed),
        max(c.ratio or 0.0 for c in streamed),
        max(c.max_abs for c in invariance),
        "; ".join(c.name for c in report.failures[:3]),
    )


def stream_markdown(rows: list[StreamRow]) -> list[str]:
    """The streaming table, as Markdown lines."""
    lines = [
        "## Streaming",
        "",
        "Each row is a small model exported as a stream bundle (`parity export`; stateless",
        "models with `--streaming`) and verified chunk by chunk against Keras on the CPU:",
        "3 rows, 10 steps with masked steps anywhere where there is a mask, fed all at",
        "once, one step at a time, in random chunks, and in random chunks with some rows",
        "reset half way. `max abs` is the largest difference between ONNX Runtime and",
        "Keras (a stateful model itself, called chunk by chunk) over every output and",
        "state of every chunk; `ratio` the largest to the float32 noise floor (the limit",
        "is 10); `chunked = one call` the largest difference, in either runtime alone,",
        "between a chunked run and one call over the sequence, at valid steps and for",
        "the states.",
        "",
        "| layers | source | result | graph | max abs | ratio | chunked = one call | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        numbers = [
            "-" if value is None else f"{value:.1e}" if index != 1 else f"{value:.2f}"
            for index, value in enumerate((row.max_abs, row.ratio, row.invariance))
        ]
        note = row.note.replace("|", "/")
        lines.append(
            f"| {row.layers} | {row.source} | {row.result} | {row.graph} | "
            f"{' | '.join(numbers)} | {note} |"
        )
    return lines


# --- the models ----------------------------------------------------------------


def _model(stateful: bool, body: Callable[[Any, dict], Any], tokens: bool = False) -> Any:
    """``body(x, recurrent options)`` on an input of 3 rows when stateful,
    weights moved by :data:`SPREAD`."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    shape = (BATCH if stateful else None, None) + (() if tokens else (FEATURES,))
    x = keras.Input(batch_shape=shape, name="tokens" if tokens else "x")
    model = keras.Model(x, body(x, {"stateful": stateful}))
    rng = np.random.default_rng(0)
    weights = model.get_weights()
    model.set_weights([w + rng.normal(0, SPREAD, w.shape).astype(w.dtype) for w in weights])
    return model


def _tagger(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.LSTM(UNITS, return_sequences=True, **s)(x)
        return layers.TimeDistributed(layers.Dense(3), name="tags")(h)

    return _model(stateful, body)


def _gru_per_step(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        return layers.Dense(3, name="head")(layers.GRU(UNITS, return_sequences=True, **s)(x))

    return _model(stateful, body)


def _gru_classifier(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.GRU(UNITS, reset_after=False, **s)(x)
        return layers.Dense(4, activation="softmax", name="probs")(h)

    return _model(stateful, body)


def _simple_rnn(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.SimpleRNN(UNITS, return_sequences=True, **s)(x)
        return layers.Dense(3, name="head")(h)

    return _model(stateful, body)


def _stacked(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.LSTM(UNITS, return_sequences=True, **s)(x)
        h = layers.LSTM(6, return_sequences=True, **s)(h)
        h = layers.GRU(6, **s)(h)
        return layers.Dense(4, activation="softmax", name="probs")(h)

    return _model(stateful, body)


def _masked_tagger(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.LSTM(UNITS, return_sequences=True, **s)(layers.Masking(0.0)(x))
        return layers.TimeDistributed(layers.Dense(3), name="tags")(h)

    return _model(stateful, body)


def _masked_stacked_gru(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.GRU(UNITS, return_sequences=True, **s)(layers.Masking(0.0)(x))
        h = layers.GRU(6, reset_after=False, **s)(h)
        return layers.Dense(3, activation="softmax", name="probs")(h)

    return _model(stateful, body)


def _masked_simple_rnn(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.SimpleRNN(7, **s)(layers.Masking(0.0)(x))
        return layers.Dense(2, name="head")(h)

    return _model(stateful, body)


def _embedding(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.Embedding(20, 6, mask_zero=True)(x)
        h = layers.LSTM(UNITS, return_sequences=True, **s)(h)
        return layers.Dense(20, activation="softmax", name="next_token")(h)

    return _model(stateful, body, tokens=True)


def _conv_state_out(stateful: bool) -> Any:
    from keras import layers

    def body(x, s):
        h = layers.Conv1D(6, 1, activation="relu")(x)
        h, state_h, state_c = layers.LSTM(UNITS, return_sequences=True, return_state=True, **s)(h)
        return [layers.Dense(2, name="head")(h), state_h, state_c]

    return _model(stateful, body)


_MODELS: dict[str, Callable[[bool], Any]] = {
    "LSTM, TimeDistributed(Dense)": _tagger,
    "GRU, Dense per step": _gru_per_step,
    "GRU(reset_after=False) last output, Dense softmax": _gru_classifier,
    "SimpleRNN, Dense per step": _simple_rnn,
    "LSTM, LSTM, GRU (stacked), Dense softmax": _stacked,
    "Masking, LSTM, TimeDistributed(Dense)": _masked_tagger,
    "Masking, GRU, GRU(reset_after=False), Dense softmax": _masked_stacked_gru,
    "Masking, SimpleRNN, Dense (the issue's model)": _masked_simple_rnn,
    "Embedding(mask_zero), LSTM, Dense softmax": _embedding,
    "Conv1D(kernel 1), LSTM with return_state, Dense": _conv_state_out,
}


_REFUSED = (
    "Bidirectional(LSTM)",
    "LSTM(go_backwards=True)",
    "LSTM, Flatten (fixed time 6), Dense",
    "Conv1D(kernel 3, causal), LSTM",
    "LSTM, GlobalAveragePooling1D",
    "LSTM, self-attention",
    "stateful LSTM, stateless GRU",
    "LSTM, LayerNormalization(axis=1) (fixed time 6)",
)


def _refused(label: str) -> Any:
    """The stateful model of the refused configuration ``label``; its layers
    are named, so that the reason reads the same in every run."""
    import keras
    from keras import layers

    lstm = partial(layers.LSTM, 4, stateful=True, name="lstm")
    sequence = partial(lstm, return_sequences=True)
    chains = {
        "Bidirectional(LSTM)": [
            lambda: layers.Bidirectional(layers.LSTM(4, stateful=True), name="bidirectional")
        ],
        "LSTM(go_backwards=True)": [partial(lstm, go_backwards=True)],
        "LSTM, Flatten (fixed time 6), Dense": [
            sequence, partial(layers.Flatten, name="flatten"), partial(layers.Dense, 2)
        ],
        "Conv1D(kernel 3, causal), LSTM": [
            partial(layers.Conv1D, 4, 3, padding="causal", name="conv1d"), lstm
        ],
        "LSTM, GlobalAveragePooling1D": [
            sequence, partial(layers.GlobalAveragePooling1D, name="pooling")
        ],
        "stateful LSTM, stateless GRU": [sequence, partial(layers.GRU, 3, name="gru")],
        "LSTM, LayerNormalization(axis=1) (fixed time 6)": [
            sequence, partial(layers.LayerNormalization, axis=1, name="normalization")
        ],
    }  # fmt: skip
    x = keras.Input(batch_shape=(BATCH, 6 if "fixed time" in label else None, FEATURES), name="x")
    if label == "LSTM, self-attention":
        y = sequence()(x)
        return keras.Model(x, layers.Attention(name="attention")([y, y]), name="refused")
    y = x
    for make in chains[label]:
        y = make()(y)
    return keras.Model(x, y, name="refused")
