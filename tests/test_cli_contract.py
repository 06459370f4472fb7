"""The CLI's promise: bad input exits 2 with one line ``error: ...`` on stderr,
never a traceback, and writes nothing. Generated bad arguments for every
command that needs no trained model; TensorFlow's native start-up lines kept
off stderr."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from parity import models
from parity.cli.app import bad_input, cli
from parity.cli.commands import load as load_command
from parity.exporter.opsets import SUPPORTED_OPSETS
from parity.runtime.errors import ParameterError, ParityError
from parity.runtime.providers import DEVICES
from tests import bundles

ROOT = Path(__file__).resolve().parents[1]
FEW = settings(max_examples=12, deadline=None)

# File names a user could type: any character but NUL and "/", odd ones included.
ODD_NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in (".", ".."))


def _not_an_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


NOT_INTS = st.text(max_size=8).filter(_not_an_int)


def unknown_options(command: str) -> st.SearchStrategy[list[str]]:
    """An option that ``parity COMMAND`` does not have."""
    known = {"-h", "--help"}
    for parameter in load_command(command).params:
        known.update(parameter.opts + parameter.secondary_opts)
    options = st.from_regex(r"--?[a-z][a-z0-9-]{0,10}", fullmatch=True)
    return options.filter(lambda option: option not in known).map(lambda option: [option])


def _fill(args: list, folder: Path) -> list[str]:
    return [str(arg).replace("{folder}", str(folder)) for arg in args]


def _assert_refused(args: list, folder: Path) -> None:
    """``parity ARGS`` exits 2 with one ``error:`` line and leaves ``folder`` as it was."""
    before = set(folder.rglob("*"))
    args = _fill(args, folder)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, (args, result.stderr)
    assert lines[0].startswith("error: "), (args, result.stderr)
    assert "Traceback" not in result.output
    assert set(folder.rglob("*")) == before, args


def _garbage_bundle(folder: Path) -> Path:
    bundle = folder / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{ not json", encoding="utf-8")
    (bundle / "model.onnx").write_bytes(b"\x00garbage")
    return bundle


# Where an output file cannot be written: a folder, or a file in a missing folder.
BAD_OUTPUTS = st.one_of(st.just("{folder}"), ODD_NAMES.map(lambda name: "{folder}/missing/" + name))


@FEW
@given(bad=st.one_of(unknown_options("zoo"), ODD_NAMES.map(lambda name: [name])))
def test_zoo_refuses_unknown_options_and_arguments(bad):
    with tempfile.TemporaryDirectory() as folder:
        _assert_refused(["zoo", *bad], Path(folder))


@FEW
@given(
    source=st.one_of(
        st.just("{folder}"),  # a folder
        st.just("{folder}/garbage.keras"),
        ODD_NAMES.map(lambda name: "{folder}/" + name),  # no such file
    ),
    bad=st.one_of(
        st.just([]),
        st.integers(-100, 100)
        .filter(lambda n: n not in SUPPORTED_OPSETS)
        .map(lambda n: ["--opset", str(n)]),
        NOT_INTS.map(lambda text: ["--opset", text]),
        st.integers(-(2**40), -1).map(lambda n: ["--seed", str(n)]),
        unknown_options("export"),
    ),
)
def test_export_refuses_bad_sources_and_options(source, bad):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "garbage.keras").write_bytes(b"PK\x03\x04 not a zip")
        _assert_refused(["export", source, "{folder}/out", *bad], Path(folder))


@FEW
@given(
    bad=st.one_of(
        st.just([]),
        st.text(max_size=8)
        .filter(lambda text: text not in DEVICES)
        .map(lambda text: ["--device", text]),
        st.integers(-5, 0).map(lambda n: ["--batch", str(n)]),
        NOT_INTS.map(lambda text: ["--steps", text]),
        BAD_OUTPUTS.map(lambda path: ["--json", path]),
        BAD_OUTPUTS.map(lambda path: ["--plot", path]),
        unknown_options("verify"),
    )
)
def test_verify_refuses_a_garbage_bundle_and_bad_options(bad):
    with tempfile.TemporaryDirectory() as folder:
        _garbage_bundle(Path(folder))
        _assert_refused(["verify", "{folder}/bundle", *bad], Path(folder))


@FEW
@given(
    name=ODD_NAMES,
    output=st.one_of(st.just("{folder}/out.npy"), BAD_OUTPUTS),
    bad=st.one_of(st.just([]), NOT_INTS.map(lambda text: ["--steps", text])),
)
def test_generate_refuses_a_garbage_bundle_and_bad_outputs(name, output, bad):
    with tempfile.TemporaryDirectory() as folder:
        _garbage_bundle(Path(folder))
        args = ["generate", "{folder}/bundle", "--input", "{folder}/" + name, "-o", output]
        _assert_refused([*args, *bad], Path(folder))


@FEW
@given(
    name=ODD_NAMES.filter(lambda name: name not in models.names()),
    bad=st.one_of(st.just([]), NOT_INTS.map(lambda text: ["--epochs", text])),
)
def test_train_refuses_unknown_models(name, bad):
    with tempfile.TemporaryDirectory() as folder:
        _assert_refused(["train", name, "-o", "{folder}/m.keras", *bad], Path(folder))


@FEW
@given(
    bad=st.one_of(
        st.integers(-10, 0).map(lambda n: ["--batch", str(n)]),
        st.integers(-10, 0).map(lambda n: ["--repeats", str(n)]),
        st.integers(-10, -1).map(lambda n: ["--warmup", str(n)]),
        NOT_INTS.map(lambda text: ["--batch", text]),
        st.text(max_size=8)
        .filter(lambda t: t not in ("tiny", "seed"))
        .map(lambda text: ["--preset", text]),
        BAD_OUTPUTS.map(lambda path: ["--json", path]),
        unknown_options("bench"),
    )
)
def test_bench_refuses_bad_batches_timings_and_outputs(bad):
    with tempfile.TemporaryDirectory() as folder:
        # The smallest run, should a bad value get through.
        run = ["--preset", "tiny", "--only", "seq_tagger", "--repeats", "1", "--warmup", "0"]
        _assert_refused(["bench", *run, *bad, "--plot", "{folder}/b.png"], Path(folder))


@pytest.mark.parametrize("target", ["{folder}", "{folder}/missing/out"])
@pytest.mark.parametrize(
    "args",
    [
        ["verify", "{folder}/single", "--json"],
        ["verify", "{folder}/single", "--plot"],
        ["generate", "{folder}/seq2seq", "--input", "{folder}/x.npy", "-o"],
    ],
)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(args, target, tmp_path):
    bundles.write_single(tmp_path / "single")
    bundles.write_seq2seq(tmp_path / "seq2seq")
    np.save(tmp_path / "x.npy", np.ones((1, 4, bundles.FEATURES), np.float32))
    _assert_refused([*args, target], tmp_path)


def test_a_library_parameter_is_named_by_the_commands_flag():
    bench = load_command("bench")
    message = bad_input(ParameterError("batches", "must be at least 1, got [0]"), bench).message
    assert message == "--batch: must be at least 1, got [0]"
    assert bad_input(ParameterError("nothing", "is wrong"), bench).message == "nothing: is wrong"
    assert bad_input(ParityError("a.keras: no such file"), bench).message == "a.keras: no such file"


def test_usage_errors_are_one_line_and_help_is_not():
    runner = CliRunner()
    for args in (["nope"], ["--nope"], ["export"], ["verify", "b", "--device", "tpu"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
    result = runner.invoke(cli, ["export", "--help"])
    assert result.exit_code == 0 and "export [OPTIONS] SRC OUT_DIR" in result.output.splitlines()[0]


def test_a_file_name_with_a_line_break_stays_one_line():
    result = CliRunner().invoke(cli, ["export", "a\nb\u2028c.keras", "out"])
    assert result.stderr == "error: a\\nb\\u2028c.keras: no such file\n"


def test_tensorflow_start_up_lines_stay_off_stderr(tmp_path):
    import keras

    inputs = keras.Input((None, 3), name="sequence")
    keras.Model(inputs, keras.layers.LSTM(2)(inputs)).save(tmp_path / "m.keras")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "parity", "export", tmp_path / "m.keras", tmp_path / "bundle"],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stdout
    noise = ("oneDNN", "absl", "cuda", "E0000", "W0000", "I0000")
    assert [line for line in done.stderr.splitlines() if any(n in line for n in noise)] == []
