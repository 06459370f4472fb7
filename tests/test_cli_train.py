"""``parity zoo`` and ``parity train`` from the command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from parity import models
from parity.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]


def _parity(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_zoo_lists_every_model_with_its_presets():
    result = CliRunner().invoke(cli, ["zoo"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in models.names():
        (line,) = [line for line in lines if line.startswith(name + " ")]
        assert models.get(name).description in line
    assert sum(line.strip().startswith("tiny: ") for line in lines) == len(models.names())
    assert sum(line.strip().startswith("seed: ") for line in lines) == len(models.names())
    assert "horizon=150" in result.output


def test_zoo_does_not_import_tensorflow():
    result = _parity("-X", "importtime", "-m", "parity", "zoo")
    assert result.returncode == 0, result.stderr
    assert "sine_seq2seq" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "parity.models" in imported
    assert not {name.split(".")[0] for name in imported} & {"tensorflow", "keras", "tf2onnx"}


def test_train_saves_a_model_that_loads(tmp_path):
    import keras

    path = tmp_path / "tagger.keras"
    args = ["train", "seq_tagger", "-o", str(path), "--epochs", "2", "--seed", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "... epoch 2/2: " in result.stderr
    assert "held-out accuracy: " in result.output and "(chance: " in result.output
    assert f"saved {path}" in result.output
    assert keras.models.load_model(path).layers[-1].name == "tags"


def test_python_m_parity_trains_and_saves(tmp_path):
    path = tmp_path / "masked.keras"
    result = _parity("-m", "parity", "train", "masked_lstm", "-o", str(path), "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout
    assert path.is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: unknown zoo model 'nope' (choose from: conv_rows_lstm"),
        (["seq_tagger", "--preset", "big"], "error: seq_tagger: unknown preset 'big'"),
        (["seq_tagger", "--epochs", "0"], "error: epochs must be at least 1, got 0"),
        (["seq_tagger", "-o", "{tmp}/missing/m.keras"], "does not exist"),
        (["seq_tagger", "-o", "{tmp}/m.h5"], "the model file name must end with .keras"),
        (["seq_tagger", "-o", "{tmp}"], "is a folder, expected a file name"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "m.keras")]
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 2
    assert len(result.output.splitlines()) == 1, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []
