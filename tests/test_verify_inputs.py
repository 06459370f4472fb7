"""``parity verify MODEL BUNDLE`` with the user's own inputs and options: every
kind of bundle takes ``--inputs``, and what cannot apply is refused with one
line and exit 2 before either runtime runs."""

import numpy as np
import pytest
from click.testing import CliRunner

from parity.cli.app import cli


def _verify(*args):
    result = CliRunner().invoke(cli, ["verify", *map(str, args), "--device", "cpu", "-q"])
    return result


@pytest.fixture(scope="module")
def sine(exported_zoo):
    trained, manifest, bundle = exported_zoo["sine_seq2seq"]
    return trained.path, manifest, bundle


@pytest.fixture(scope="module")
def masked(exported_zoo):
    trained, manifest, bundle = exported_zoo["masked_lstm"]
    return trained.path, manifest, bundle


def _encoder_arrays(manifest, batch=2, time=6):
    spec = manifest.graph("encoder").input(manifest.seq2seq.encoder_input)
    features = spec.shape[-1]
    rng = np.random.default_rng(0)
    return {spec.name: rng.uniform(-1, 1, (batch, time, features)).astype("float32")}


def test_seq2seq_bundle_checks_your_inputs(sine, tmp_path):
    model, manifest, bundle = sine
    np.savez(tmp_path / "in.npz", **_encoder_arrays(manifest))
    result = _verify(model, bundle, "--inputs", tmp_path / "in.npz")
    assert result.exit_code == 0, result.output
    assert "on your inputs" in result.output


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda arrays: {**arrays, "nothing": np.zeros(3)}, "named after no input"),
        (lambda arrays: {"other": next(iter(arrays.values()))}, "encoder_input"),
        (lambda arrays: {k: np.full_like(v, np.nan) for k, v in arrays.items()}, "NaN"),
    ],
    ids=["unknown array", "missing encoder input", "nan"],
)
def test_seq2seq_bad_inputs_exit_2_before_running(sine, tmp_path, damage, words):
    model, manifest, bundle = sine
    np.savez(tmp_path / "in.npz", **damage(_encoder_arrays(manifest)))
    result = _verify(model, bundle, "--inputs", tmp_path / "in.npz")
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and words in line


def test_options_that_do_not_apply_are_refused(masked, tmp_path):
    model, _, bundle = masked
    for args, words in (
        (["--steps", "3"], "--steps"),
        (["--growth", "0.1"], "--growth"),
        (["--atol", "no_such_output=1e-3"], "no_such_output"),
    ):
        result = _verify(model, bundle, *args)
        assert result.exit_code == 2, result.output
        (line,) = result.output.strip().splitlines()
        assert line.startswith("error: ") and words in line
