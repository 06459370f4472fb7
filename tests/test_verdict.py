"""The gate's verdict means one thing per exit status: 0 the runtimes agree,
1 they disagree, 2 bad input, 3 parity itself failed, 4 (with --strict) the
model has findings, 130 interrupted. Models are written the way public
examples and tf2onnx's own tests write them, not taken from the zoo."""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras import layers

from parity.cli.app import cli
from tests import bundles


def _verify(*args, expect):
    result = CliRunner().invoke(cli, ["verify", *map(str, args), "-q"])
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result.output


def _saved(model, tmp_path):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    bundle = tmp_path / f"{model.name}_bundle"
    result = CliRunner().invoke(cli, ["export", str(path), str(bundle)])
    assert result.exit_code == 0, result.output
    return path, bundle


def lstm_fcn():
    """tf2onnx's LSTM-FCN application (keras2onnx_applications, nightly_build):
    a Masking -> LSTM branch beside a Conv1D branch over the same raw input."""
    ip = keras.Input((12, 3), name="sequence")
    x = layers.LSTM(8)(layers.Masking()(ip))
    y = layers.Permute((2, 1))(ip)
    y = layers.Conv1D(8, 3, padding="same", kernel_initializer="he_uniform")(y)
    y = layers.Activation("relu")(layers.BatchNormalization()(y))
    y = layers.GlobalAveragePooling1D()(y)
    out = layers.Dense(4, activation="softmax")(layers.concatenate([x, y]))
    return keras.Model(ip, out, name="lstm_fcn")


def test_padding_that_changes_the_model_is_a_finding_not_a_disagreement(tmp_path):
    path, bundle = _saved(lstm_fcn(), tmp_path)
    report = tmp_path / "report.json"
    output = _verify(path, bundle, "--json", report, expect=0)
    assert "finding (padding)" in output and "TensorFlow and in ONNX Runtime alike" in output
    written = json.loads(report.read_text())
    assert written["passed"] and [f["kind"] for f in written["findings"]] == ["padding"]
    # both runtimes still face each other on the rows padded other ways
    padding = [c for c in written["checks"] if c["kind"] == "padding"]
    assert padding and all(c["passed"] for c in padding)
    _verify(path, bundle, "--strict", expect=4)


def test_a_layer_without_float64_kernels_falls_back_to_fixed_tolerances(tmp_path):
    """LipNet's form: Conv3D, MaxPooling3D (no float64 kernel in TensorFlow),
    then a recurrent layer over the frames."""
    ip = keras.Input((6, 8, 8, 1), name="frames")
    x = layers.Conv3D(4, (3, 3, 3), padding="same", activation="relu")(ip)
    x = layers.MaxPooling3D(pool_size=(1, 2, 2))(x)
    x = layers.TimeDistributed(layers.Flatten())(x)
    out = layers.Dense(5, activation="softmax")(layers.GRU(6, return_sequences=True)(x))
    path, bundle = _saved(keras.Model(ip, out, name="lipnet"), tmp_path)
    output = _verify(path, bundle, expect=0)
    assert "fixed tolerances (allclose rule): the float64 rebuild cannot run" in output


def test_two_masked_inputs_on_one_time_axis(tmp_path):
    a, b = keras.Input((None,), name="a"), keras.Input((None,), name="b")
    ha = layers.LSTM(5, return_sequences=True)(layers.Embedding(20, 4, mask_zero=True)(a))
    hb = layers.LSTM(5, return_sequences=True)(layers.Embedding(20, 4, mask_zero=True)(b))
    out = layers.Dense(3)(layers.LSTM(4)(layers.Multiply()([ha, hb])))
    path, bundle = _saved(keras.Model([a, b], out, name="two_masked"), tmp_path)
    output = _verify(path, bundle, expect=0)
    assert "share the masked input's time axis" in output


def test_a_crash_inside_verify_exits_3_with_one_line(tmp_path, monkeypatch):
    bundles.write_single(tmp_path / "b")

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(importlib.import_module("parity.verify.check"), "check_golden", broken)
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "b"), "-q"])
    assert result.exit_code == 3, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: parity failed: RuntimeError: something inside broke")
    assert "--verbose" in line
    verbose = CliRunner().invoke(cli, ["--verbose", "verify", str(tmp_path / "b")])
    assert verbose.exit_code == 3 and "Traceback" in verbose.output


SLOW_VERIFY = """
import importlib, sys, time
def slow(*args, **kwargs):
    print("checking", flush=True)
    time.sleep(60)
importlib.import_module("parity.verify.check").check_golden = slow
from parity.cli.app import main
sys.argv = ["parity", "verify", sys.argv[1], "-q"]
main()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_ctrl_c_exits_130_never_1(tmp_path):
    bundles.write_single(tmp_path / "b")
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_VERIFY, str(tmp_path / "b")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "checking"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["error: interrupted; nothing was judged"]


def _two_inputs_state_passing():
    """tf2onnx's keras2onnx recurrent tests: one LSTM's states start another
    over a second input, whose last output is the model's."""
    first, second = keras.Input((5, 3), name="first"), keras.Input((4, 3), name="second")
    _, h, c = layers.LSTM(6, return_state=True)(first)
    out = layers.Dense(2)(layers.LSTM(6)(second, initial_state=[h, c]))
    return keras.Model([first, second], out, name="state_passing")


def _decoder_of_other_width():
    """An encoder-decoder whose decoder reads 5 features and emits 2: there is
    no step output to feed back, so it is a plain two-input model."""
    encoder, decoder = keras.Input((6, 5), name="encoder"), keras.Input((4, 5), name="decoder")
    _, h, c = layers.LSTM(6, return_state=True)(encoder)
    sequence = layers.LSTM(6, return_sequences=True)(decoder, initial_state=[h, c])
    return keras.Model([encoder, decoder], layers.Dense(2)(sequence), name="other_width")


@pytest.mark.parametrize("build", [_two_inputs_state_passing, _decoder_of_other_width])
def test_models_that_fit_no_seq2seq_form_export_as_one_graph(tmp_path, build):
    model = build()
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    exported = CliRunner().invoke(cli, ["export", str(path), str(tmp_path / "b")])
    assert exported.exit_code == 0, exported.output
    assert "note: not split into seq2seq graphs" in exported.output
    _verify(path, tmp_path / "b", expect=0)
    asked = CliRunner().invoke(cli, ["export", str(path), str(tmp_path / "c"), "--seq2seq"])
    assert asked.exit_code == 2 and "--no-seq2seq" in asked.output, asked.output


def _characters():
    """A character-level input: one Embedding per word, TimeDistributed."""
    chars = keras.Input((5, 7), name="chars")
    x = layers.TimeDistributed(layers.Embedding(40, 3))(chars)
    x = layers.TimeDistributed(layers.Flatten())(x)
    return keras.Model(chars, layers.Dense(2)(layers.GRU(4)(x)), name="characters")


def test_inputs_that_reach_an_embedding_lookup_are_drawn_as_token_ids(tmp_path):
    """Through a wrapper, and in a SavedModel, which has no layers to read."""
    path, bundle = _saved(_characters(), tmp_path)
    inputs = json.loads((bundle / "manifest.json").read_text())["graphs"]["model"]["inputs"]
    assert inputs[0]["domain"] == {"kind": "tokens", "vocab": 40}
    assert "finding" not in _verify(path, bundle, expect=0)
    ids = keras.Input((6,), name="ids")
    x = layers.LSTM(5)(layers.Embedding(30, 4, mask_zero=True)(ids))
    keras.Model(ids, layers.Dense(3, activation="softmax")(x)).export(tmp_path / "saved")
    exported = CliRunner().invoke(cli, ["export", str(tmp_path / "saved"), str(tmp_path / "sb")])
    assert exported.exit_code == 0, exported.output
    inputs = json.loads((tmp_path / "sb/manifest.json").read_text())["graphs"]["model"]["inputs"]
    assert inputs[0]["domain"] == {"kind": "tokens", "vocab": 30}
    assert "finding" not in _verify(tmp_path / "saved", tmp_path / "sb", expect=0)


def test_an_output_that_is_the_same_for_every_drawn_row_is_flagged(tmp_path):
    """Character ids drawn as floats in (-1, 1) all become id 0: the model's
    output is one constant, and its checks would pass on a wrong graph."""
    path, bundle = _saved(_characters(), tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["graphs"]["model"]["inputs"][0]["domain"] = {
        "kind": "uniform",
        "low": -1.0,
        "high": 1.0,
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    output = _verify(path, bundle, expect=0)
    assert "finding (constant_output): output 'dense" in output
    _verify(path, bundle, "--strict", expect=4)


def test_a_sequential_model_built_by_its_first_call_keeps_a_dynamic_batch(tmp_path):
    """keras2onnx's self-attention test builds its model with ``predict`` on 4
    rows: the batch of 4 Keras records is no property of the model."""
    model = keras.Sequential(
        [
            layers.Embedding(20, 4, mask_zero=True),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Dense(3),
        ]
    )
    model.predict(np.random.default_rng(0).integers(1, 20, (4, 10)).astype("float32"), verbose=0)
    path, bundle = _saved(model, tmp_path)
    inputs = json.loads((bundle / "manifest.json").read_text())["graphs"]["model"]["inputs"]
    assert inputs[0]["shape"][0] == "batch"
    _verify(path, bundle, expect=0)
