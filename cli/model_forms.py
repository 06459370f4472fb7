"""The model-forms table of the support matrix: the same small recurrent model
written the ways users write it (functional, ``Sequential``, ``.h5``,
SavedModel, several inputs, the three seq2seq forms), each saved to a file,
exported from that file and verified against it, as ``parity export`` and
``parity verify`` do."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEATURES = 3
UNITS = 4
STEPS = 4


@dataclass(frozen=True)
class FormCase:
    """One form: ``build`` makes the model, ``save`` writes it where it says
    and returns the path parity reads (a file or a SavedModel folder)."""

    form: str
    model: str
    build: Callable[[], Any]
    file: str  # ".keras", ".h5" or "saved_model"

    @property
    def name(self) -> str:
        return f"{self.form}: {self.model}"


@dataclass(frozen=True)
class FormRow:
    form: str
    model: str
    result: str  # "exports", "refused" or "FAILS"
    kind: str  # the bundle's kind, and its seq2seq form
    checks: str  # passed / run
    reason: str = ""


def run_form(case: FormCase, folder: Path | None = None) -> FormRow:
    """Save, export and verify one form (on the CPU, seed 0)."""
    from parity.exporter import export_keras
    from parity.runtime.errors import ParityError
    from parity.verify.check import check
    from parity.verify.options import VerifyOptions

    folder = Path(folder or tempfile.mkdtemp(prefix="parity-forms-"))
    work = folder / case.name.translate(str.maketrans(" :(),=", "______"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = case.build()
    if case.file == "saved_model":
        source = work / "saved"
        model.export(str(source), verbose=False)
    else:
        source = work / f"model{case.file}"
        model.save(source)
    try:
        manifest = export_keras(source, work / "bundle")
    except ParityError as exc:
        return FormRow(case.form, case.model, "refused", "-", "-", str(exc))
    kind = manifest.kind + (f" ({manifest.seq2seq.form})" if manifest.seq2seq else "")
    report = check(work / "bundle", source, VerifyOptions(device="cpu", batches=(1, 3), times=(5,)))
    passed = len(report.checks) - len(report.failures)
    result = "exports" if report.passed else "FAILS"
    reason = "; ".join(c.name for c in report.failures[:3])
    return FormRow(case.form, case.model, result, kind, f"{passed}/{len(report.checks)}", reason)


def forms_markdown(rows: list[FormRow]) -> list[str]:
    """The table's Markdown lines."""
    lines = [
        "## Model forms",
        "",
        "Each row is one small model written in one form, saved, exported from the",
        "file and verified against it on the CPU (batches 1 and 3).",
        "",
        "| form | model | result | bundle | checks passed | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        note = row.reason.replace("|", "/")
        lines.append(
            f"| {row.form} | {row.model} | {row.result} | {row.kind} | {row.checks} | {note} |"
        )
    return lines


def form_cases() -> list[FormCase]:
    """Every form the table covers."""
    return [
        FormCase("functional", "Masking, LSTM, softmax", _functional, ".keras"),
        FormCase("Sequential", "Input, Masking, LSTM, softmax", _sequential, ".keras"),
        FormCase("Sequential", "built by fit, no input shape", _sequential_fit, ".keras"),
        FormCase("legacy HDF5", "Sequential, input_shape=, GRU", _sequential_h5, ".h5"),
        FormCase("legacy HDF5", "functional, LSTM tagger", _tagger, ".h5"),
        FormCase("SavedModel", "model.export of an LSTM classifier", _functional, "saved_model"),
        FormCase("two inputs", "lengths not tied, LSTM + GRU", _two_inputs, ".keras"),
        FormCase("seq2seq", "teacher forcing, LSTM", _teacher_forcing, ".keras"),
        FormCase("seq2seq", "attention (Luong), GRU, tokens", _attention, ".keras"),
        FormCase("seq2seq", "decoder unrolled by hand, LSTM", _unrolled, ".keras"),
    ]


# --- the models ----------------------------------------------------------------


def _classifier_layers():
    import keras

    return [
        keras.layers.Masking(0.0),
        keras.layers.LSTM(UNITS),
        keras.layers.Dense(3, activation="softmax"),
    ]


def _functional():
    import keras

    keras.utils.set_random_seed(0)
    y = x = keras.Input((None, FEATURES), name="sequence")
    for layer in _classifier_layers():
        y = layer(y)
    return keras.Model(x, y)


def _sequential():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((None, FEATURES)), *_classifier_layers()])


def _sequential_fit():
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential(_classifier_layers())
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(6, 5, FEATURES)).astype("float32")
    model.fit(x, np.eye(3, dtype="float32")[np.arange(6) % 3], epochs=1, verbose=0)
    return model


def _sequential_h5():
    import keras

    keras.utils.set_random_seed(0)
    first = keras.layers.GRU(UNITS, input_shape=(6, FEATURES))
    return keras.Sequential([first, keras.layers.Dense(2)])


def _tagger():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((None, FEATURES), name="tokens")
    y = keras.layers.LSTM(UNITS, return_sequences=True)(x)
    return keras.Model(x, keras.layers.Dense(5, activation="softmax", name="tags")(y))


def _two_inputs():
    import keras

    keras.utils.set_random_seed(0)
    a = keras.Input((None, FEATURES), name="history")
    b = keras.Input((None, 2), name="context")
    merged = keras.layers.Concatenate()([keras.layers.LSTM(UNITS)(a), keras.layers.GRU(3)(b)])
    return keras.Model([a, b], keras.layers.Dense(2, name="scores")(merged))


def _teacher_forcing():
    import keras

    keras.utils.set_random_seed(0)
    source = keras.Input((None, FEATURES), name="source")
    _, h, c = keras.layers.LSTM(UNITS, return_state=True)(source)
    target = keras.Input((None, FEATURES), name="target")
    y = keras.layers.LSTM(UNITS, return_sequences=True)(target, initial_state=[h, c])
    return keras.Model([source, target], keras.layers.Dense(FEATURES, name="forecast")(y))


def _attention():
    import keras

    keras.utils.set_random_seed(0)
    vocab = 7
    source = keras.Input((None,), dtype="int32", name="source")
    encoded, state = keras.layers.GRU(UNITS, return_sequences=True, return_state=True)(
        keras.layers.Embedding(vocab, 3)(source)
    )
    target = keras.Input((None,), dtype="int32", name="target")
    decoded = keras.layers.GRU(UNITS, return_sequences=True)(
        keras.layers.Embedding(vocab, 3)(target), initial_state=state
    )
    context = keras.layers.Attention()([decoded, encoded])
    joined = keras.layers.Concatenate()([decoded, context])
    probs = keras.layers.Dense(vocab, activation="softmax", name="probs")(joined)
    return keras.Model([source, target], probs)


def _unrolled():
    import keras

    keras.utils.set_random_seed(0)
    source = keras.Input((None, FEATURES), name="source")
    _, *states = keras.layers.LSTM(UNITS, return_state=True)(source)
    first = keras.Input((1, FEATURES), name="first_step")
    decoder = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    dense = keras.layers.Dense(FEATURES, name="forecast")
    x, outputs = first, []
    for _ in range(STEPS):
        y, *states = decoder(x, initial_state=states)
        x = dense(y)
        outputs.append(x)
    return keras.Model([source, first], keras.layers.Concatenate(axis=1)(outputs))
