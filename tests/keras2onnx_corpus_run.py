"""parity's command line over the keras2onnx corpus, as a user would run it.

For each entry of :mod:`tests.keras2onnx_corpus`: build the model (seeded),
fit it briefly on random rows (unless the entry says not to), save it
(``.keras``; ``.h5`` where the entry is meant as one), then, each in a fresh
process with a time limit::

    parity export MODEL BUNDLE [--unsafe] --custom-objects OBJECTS
    parity verify MODEL BUNDLE [--unsafe] --custom-objects OBJECTS

(``--unsafe`` for models with a ``Lambda``; OBJECTS hands over the corpus'
custom layers and the functions its ``Lambda`` layers name). Prints the
Markdown table of COVERAGE.md's "Real-world models" section. Not part of the
test suite (about 30 minutes on 2 cores); ``tests/test_keras2onnx_corpus.py``
runs a sample. Usage::

    python -m tests.keras2onnx_corpus_run [NAME ...] > table.md
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from tests import keras2onnx_corpus as corpus

TIMEOUT_S = 600
OBJECTS = "from tests.keras2onnx_corpus import CUSTOM_OBJECTS as custom_objects\n"


def run_entry(entry: corpus.CorpusEntry, folder: Path, objects: Path) -> tuple[str, str]:
    """The entry's status ("pass", "exit N") and the first ``error:`` line or
    the verdict line."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model, _ = corpus.build_and_call(entry, rng)
    if entry.fit:
        _fit(entry, model, rng)
    path = folder / ("model.h5" if entry.has("h5-only") else "model.keras")
    model.save(path)
    if entry.h5_patch is not None:
        entry.h5_patch(str(path))
    flags = ["--custom-objects", str(objects), *(["--unsafe"] if entry.has("lambda") else [])]
    for command in ("export", "verify"):
        argv = [sys.executable, "-m", "parity", command, str(path), str(folder / "bundle")]
        done = subprocess.run(
            [*argv, *flags, *(["-q"] if command == "verify" else [])],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=Path(__file__).resolve().parent.parent,
        )
        lines = (done.stdout + done.stderr).splitlines()
        error = next((line for line in lines if line.startswith("error:")), "")
        if done.returncode != 0:
            return f"exit {done.returncode}", error
    verdict = next((line for line in reversed(lines) if line.startswith("PASSED")), "")
    return "pass", verdict


def _fit(entry: corpus.CorpusEntry, model: keras.Model, rng: np.random.Generator) -> None:
    """Three epochs on random rows and random targets, so that the weights are
    not the initial ones; a stateful model in order, then reset."""
    stateful = entry.has("stateful")
    x = corpus.sample_inputs(model, rng, batch=4 if stateful else 16, call_shape=entry.call_shape)
    if stateful:
        x = [np.concatenate([a] * 4) if a.shape[0] == 1 else a for a in x]
    feed = x if len(x) > 1 else x[0]
    batch = 1 if stateful else 8
    outputs = model.predict(feed, verbose=0, batch_size=batch)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    targets = [rng.standard_normal(np.shape(y)).astype("float32") * 0.5 for y in outputs]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(feed, targets if len(targets) > 1 else targets[0], epochs=3, batch_size=batch,
              verbose=0, shuffle=not stateful)  # fmt: skip
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def main(names: list[str]) -> None:
    entries = [corpus.get(name) for name in names] if names else list(corpus.ENTRIES)
    print("| # | entry | source | result | what parity said |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="parity-corpus-") as work:
        objects = Path(work) / "corpus_objects.py"
        objects.write_text(OBJECTS)
        for number, entry in enumerate(entries, 1):
            folder = Path(work) / entry.name
            folder.mkdir()
            status, said = run_entry(entry, folder, objects)
            said = said.replace(work, "…").replace("|", "\\|")[:220]
            source = entry.source.rsplit("/", 1)[-1]
            print(f"| {number} | `{entry.name}` | {source} | {status} | {said} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
