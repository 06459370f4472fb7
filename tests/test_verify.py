"""verify against TensorFlow: the clean zoo passes, damaged graphs fail."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from parity import models
from parity.cli.app import cli
from parity.exporter import export_model
from parity.runtime.errors import ParityError
from parity.verify import VerifyOptions, assert_equivalent, check
from tests import faults


@pytest.mark.parametrize("name", models.names())
def test_clean_zoo_passes(exported_zoo, name):
    trained, _, path = exported_zoo[name]
    report = assert_equivalent(path, trained.path, device="cpu")
    kinds = {c.kind for c in report.checks}
    assert "golden" in kinds
    assert kinds & {"output", "encoder", "step"}
    assert report.device["tensorflow"] == "tensorflow /CPU:0"
    assert report.device["precision"] == "fp32"


def test_no_false_alarm_over_20_seeds(exported_zoo):
    for name in models.names():
        trained, _, path = exported_zoo[name]
        for seed in range(1, 21):
            report = check(
                path, trained.model, VerifyOptions(device="cpu", seed=seed, batches=(1, 5))
            )
            assert report.passed, f"{name} seed {seed}\n{report.table()}"


FAULT_CASES = [
    (model, fault) for model in ("conv_rows_lstm", "masked_lstm") for fault in faults.FAULTS
] + [("masked_lstm", fault) for fault in faults.MASK_FAULTS]


@pytest.mark.parametrize(("name", "fault"), FAULT_CASES)
def test_damaged_graph_fails(exported_zoo, tmp_path, name, fault):
    trained, _, path = exported_zoo[name]
    everything = {**faults.FAULTS, **faults.MASK_FAULTS}
    damaged = faults.damaged_copy(path, tmp_path / "damaged", everything[fault])
    report = check(damaged, trained.model, VerifyOptions(device="cpu"))
    assert not report.passed
    # TensorFlow side by side catches it, not only the stored golden outputs
    assert any(c.kind != "golden" for c in report.failures), report.table()
    # and a machine without TensorFlow catches it from the golden data
    assert not check(damaged, options=VerifyOptions(device="cpu")).passed


def test_assert_equivalent_fails_with_the_table(exported_zoo, tmp_path):
    trained, _, path = exported_zoo["conv_rows_lstm"]
    damaged = faults.damaged_copy(path, tmp_path / "d", faults.zero_bias)
    with pytest.raises(AssertionError, match="FAIL"):
        assert_equivalent(damaged, trained.model, device="cpu")


def test_model_and_bundle_must_belong_together(exported_zoo):
    with pytest.raises(ParityError, match="not the model the bundle was exported from"):
        check(exported_zoo["masked_lstm"][2], exported_zoo["seq_tagger"][0].path)


def _verify(*args):
    return CliRunner().invoke(cli, ["verify", *map(str, args)])


def test_cli_exit_codes_json_and_plot(exported_zoo, tmp_path):
    trained, _, path = exported_zoo["sine_seq2seq"]
    out = tmp_path / "report.json"
    plot = tmp_path / "errors.png"
    result = _verify(trained.path, path, "--device", "cpu", "--json", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["model"] == str(trained.path)
    assert data["generations"] and len(data["generations"][0]["max_abs_per_step"]) == 10
    assert "tensorflow" in data["versions"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    other = exported_zoo["masked_lstm"]
    damaged = faults.damaged_copy(other[2], tmp_path / "damaged", faults.swap_gates)
    result = _verify(other[0].path, damaged, "--device", "cpu", "-q")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "would pass with atol >=" in result.output

    result = _verify(exported_zoo["seq_tagger"][0].path, path, "-q")
    assert result.exit_code == 2 and "error:" in result.output


def test_cli_draws_the_time_lengths_asked_for(exported_zoo, tmp_path):
    trained, _, path = exported_zoo["seq_tagger"]  # a dynamic time axis
    out = tmp_path / "report.json"
    args = ["--device", "cpu", "-q", "--batch", "2", "--time", "3", "--time", "11"]
    result = _verify(trained.path, path, *args, "--json", out)
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads(out.read_text())["checks"]]
    assert any("time=3" in name for name in names) and any("time=11" in name for name in names)
    assert not any("time=5" in name or "time=17" in name for name in names)


def test_user_inputs_and_mask_value_warning(exported_zoo, tmp_path):
    trained, manifest, fused_path = exported_zoo["masked_lstm"]
    assert manifest.mask.fused
    path = tmp_path / "general"  # the general masked graph accepts any padding
    export_model(trained.model, path, source=manifest.source, fuse=False)
    shape = (2, *manifest.graph("model").inputs[0].shape[1:])
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    x[0, 2] = 0.0  # a real step equal to the mask value, between real steps
    x[1, 5:] = 0.0  # ordinary post-padding
    np.savez(tmp_path / "x.npz", sequence=x)
    report = check(path, trained.model, VerifyOptions(device="cpu"), inputs={"sequence": x})
    assert report.passed
    assert any("row 0: step(s) 2 equal the mask value" in note for note in report.notes)
    assert not any("row 1" in note for note in report.notes)
    result = _verify(trained.path, path, "--inputs", tmp_path / "x.npz", "-q")
    assert result.exit_code == 0, result.output
    # the fused graph counts valid steps, so it refuses such a row outright
    result = _verify(trained.path, fused_path, "--inputs", tmp_path / "x.npz", "-q")
    assert result.exit_code == 2 and "real step (3) after a padded one" in result.output
    np.savez(tmp_path / "wrong.npz", other=x)
    result = _verify(trained.path, path, "--inputs", tmp_path / "wrong.npz", "-q")
    assert result.exit_code == 2 and "no array named 'sequence'" in result.output


@pytest.fixture(scope="module", params=[True, False], ids=["fused", "loop"])
def masked_tagger(request, tmp_path_factory):
    """A masked many-to-many model with a dynamic time axis, exported both as
    ONNX's fused LSTM with sequence lengths and as tf2onnx's Loop."""
    keras.utils.set_random_seed(5)
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(x)
    sequence, h, c = keras.layers.LSTM(6, return_sequences=True, return_state=True, name="lstm")(h)
    scores = keras.layers.Dense(2, name="scores")(sequence)
    model = keras.Model(x, [scores, sequence, h, c])
    path = tmp_path_factory.mktemp("tagger") / "bundle"
    export_model(model, path, fuse=request.param)
    return model, path, request.param


def test_masked_sequences_padding_invariance_and_conventions(masked_tagger):
    """Both runtimes face each other on the same rows padded other ways; a
    model that padding does not change has no finding about it."""
    model, path, fused = masked_tagger
    report = check(path, model, VerifyOptions(device="cpu"))
    assert report.passed and not report.findings, report.table()
    names = [c.name for c in report.checks if c.kind == "padding"]
    assert any(n.startswith("scores row") and "unpadded" in n for n in names)
    assert any(n.startswith("scores padded to") for n in names)
    # the fused graph counts valid steps from the start: pre-padding is refused and said
    assert any(n.startswith("scores pre-padded") for n in names) is not fused
    assert any("requires post-padding" in note for note in report.notes) is fused
    assert any("all-padding row" in c.name for c in report.checks)
    assert {"scores", "lstm", "lstm_h", "lstm_c"} <= {n.split()[0] for n in names}
    conventions = [note for note in report.notes if "at padded steps" in note]
    assert len(conventions) == 2
    assert all("Keras gives 'repeat last valid'" in note for note in conventions)
