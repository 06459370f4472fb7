"""Progress of the commands that run for more than a few seconds: one line per
event on stderr (epochs, export stages, i/N and the time left), none with -q;
stdout keeps the result."""

import keras
from click.testing import CliRunner

from parity.cli.app import cli
from parity.cli.support_matrix import cases, write_matrix
from parity.exporter import export_model
from parity.models.training import epoch_lines
from parity.runtime.progress import duration, time_left


def test_the_time_left_follows_the_pace_so_far():
    now = [0.0]
    left = time_left(4, clock=lambda: now[0])
    assert left(0) == ""  # nothing done: no pace yet
    now[0] = 30.0
    assert left(1) == "; 1 min 30 s left"
    now[0] = 7200.0
    assert left(3) == "; 40 min 00 s left"
    assert left(4) == ""
    assert [duration(s) for s in (0.4, 59, 61, 3 * 3600 + 5 * 60)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "3 h 05 min",
    ]


def test_each_epoch_says_its_scores_and_the_time_left():
    lines = []
    callback = epoch_lines(3, lines.append)
    for epoch in range(3):
        callback.on_epoch_end(epoch, {"loss": 0.5, "accuracy": 0.75})
    assert [line.split(";")[0] for line in lines] == [
        f"epoch {n}/3: loss 0.5, accuracy 0.75" for n in (1, 2, 3)
    ]
    assert [line.endswith(" left") for line in lines] == [True, True, False]


def test_export_says_each_stage_and_is_quiet_with_q(tmp_path):
    sequence = keras.Input((None, 3), name="sequence")
    model = keras.Model(sequence, keras.layers.Dense(2)(keras.layers.GRU(4)(sequence)))
    lines = []
    export_model(model, tmp_path / "b", progress=lines.append)
    assert lines[0].startswith("fusing recurrent layers")
    assert [line for line in lines if line.startswith(("simplifying", "golden data"))]
    assert lines[-1] == f"writing {tmp_path / 'b'}"

    model.save(tmp_path / "m.keras")
    args = [str(tmp_path / "m.keras"), str(tmp_path / "c")]
    said = CliRunner().invoke(cli, ["export", *args])
    assert said.exit_code == 0, said.output
    assert said.stderr.startswith(f"... loaded {tmp_path / 'm.keras'}\n"), said.stderr
    assert "exported" in said.stdout and "... " not in said.stdout
    quiet = CliRunner().invoke(cli, ["export", "-q", *args])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output


def test_coverage_numbers_each_case_and_says_the_time_left(tmp_path):
    lines = []
    chosen = cases()[:2]
    write_matrix(tmp_path / "C.md", "cmd", configurations=chosen, progress=lines.append)
    assert lines[0] == f"1/2 {chosen[0].name}"
    assert lines[1].startswith(f"2/2 {chosen[1].name}; ") and lines[1].endswith(" left")


def test_train_says_each_epoch_on_stderr(tmp_path):
    args = ["train", "seq_tagger", "--epochs", "2", "-o", str(tmp_path / "m.keras")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if line.startswith("... epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["... epoch 1/2", "... epoch 2/2"]
    assert "held-out" in result.stdout and "... " not in result.stdout
