"""A sample of the keras2onnx corpus (tests/keras2onnx_corpus.py: tf2onnx's
own recurrent Keras tests and application models, rebuilt in Keras 3 as those
tests write them), exported and verified as a user would. The whole corpus
runs with ``python -m tests.keras2onnx_corpus_run`` (COVERAGE.md,
"Real-world models"); these entries stand for the forms that once failed."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from parity.cli.app import cli
from tests import keras2onnx_corpus as corpus
from tests.keras2onnx_corpus_run import OBJECTS, _fit


@pytest.mark.parametrize(
    "name",
    [
        "bidirectional_initial_states_gru",  # states from inputs: once taken for seq2seq
        "chatbot",  # two masked inputs on one time axis, an encoder-only merge
        "name_entity_recognition",  # TimeDistributed(Embedding) characters
        "keras_self_attention",  # a custom layer, Sequential built by predict
        "lstm_stateful_last",  # stateful: a stream bundle
    ],
)
def test_corpus_entry_exports_and_verifies(tmp_path, name):
    entry = corpus.get(name)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model, _ = corpus.build_and_call(entry, rng)
    _fit(entry, model, rng)
    model.save(tmp_path / "model.keras")
    objects = tmp_path / "corpus_objects.py"
    objects.write_text(OBJECTS)
    flags = ["--custom-objects", str(objects), *(["--unsafe"] if entry.has("lambda") else [])]
    paths = [str(tmp_path / "model.keras"), str(tmp_path / "bundle")]
    exported = CliRunner().invoke(cli, ["export", *paths, *flags])
    assert exported.exit_code == 0, exported.output
    verified = CliRunner().invoke(cli, ["verify", *paths, *flags, "-q"])
    assert verified.exit_code == 0, verified.output
    assert "finding (constant_output)" not in verified.output
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    if name == "name_entity_recognition":
        domains = {spec["name"]: spec["domain"]["kind"] for spec in
                   manifest["graphs"]["model"]["inputs"]}  # fmt: skip
        assert set(domains.values()) == {"tokens"}, domains
    if name == "lstm_stateful_last":
        assert manifest["streaming"]["source"] == "stateful"


def test_coverage_lists_every_corpus_entry_and_says_why_one_does_not_pass():
    """COVERAGE.md's corpus table is the corpus run's: one row per entry, and
    a reason beside every entry that does not pass."""
    text = (Path(__file__).resolve().parents[1] / "COVERAGE.md").read_text(encoding="utf-8")
    section = text.split("## Real-world models", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    named = [row.split("`")[1] for row in rows]
    assert named == [entry.name for entry in corpus.ENTRIES]
    reasons = section.split(rows[-1], 1)[1]
    for row, name in zip(rows, named, strict=True):
        if "| pass |" not in row:
            assert f"`{name}`" in reasons, f"{name} does not pass and COVERAGE.md says not why"
