"""``parity verify BUNDLE``: golden data with ONNX Runtime alone; exit codes."""

import json
import subprocess
import sys

from click.testing import CliRunner

from parity.cli.app import cli
from tests import bundles


def _verify(*args):
    return CliRunner().invoke(cli, ["verify", *map(str, args)])


def test_golden_data_passes_and_writes_json(tmp_path):
    bundles.write_single(tmp_path / "b")
    result = _verify(tmp_path / "b", "--device", "cpu", "--json", tmp_path / "r.json", "-q")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True
    assert report["device"]["onnxruntime"] == ["CPUExecutionProvider"]
    assert "tensorflow" not in report["versions"]


def test_golden_mismatch_fails_with_exit_1(tmp_path):
    bundles.write_single(tmp_path / "b", factor=2.001)
    result = _verify(tmp_path / "b", "--device", "cpu", "-q")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    # a looser tolerance accepts it, per output
    assert _verify(tmp_path / "b", "--atol", "y=0.1", "-q").exit_code == 0


def test_bad_usage_exits_2_with_one_line(tmp_path):
    bundles.write_single(tmp_path / "b")
    for args in (
        [tmp_path / "missing"],
        [tmp_path / "b", "--atol", "y=abc"],
        [tmp_path / "b", "--json", tmp_path / "no" / "such" / "r.json"],
        [tmp_path / "b", "--inputs", tmp_path / "x.npz"],
    ):
        result = _verify(*args)
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        assert "Traceback" not in result.output


def test_bundle_only_verification_never_imports_tensorflow(tmp_path):
    bundles.write_single(tmp_path / "b")
    script = (
        "import sys\n"
        "from parity.cli.app import main\n"
        f"sys.argv = ['parity', 'verify', {str(tmp_path / 'b')!r}, '-q']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "    print('HEAVY', heavy)\n"
        "    sys.exit(10 + (exit.code or 0) if heavy else exit.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_loads_no_command_and_neither_tensorflow_nor_onnx():
    """``parity --help`` lists the commands from their table: it imports none
    of their modules, and so neither TensorFlow nor onnx."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from parity.cli.app import cli\n"
        "result = CliRunner().invoke(cli, ['--help'])\n"
        "assert result.exit_code == 0 and 'verify' in result.output, result.output\n"
        "assert CliRunner().invoke(cli, ['--version']).exit_code == 0\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'onnx', 'keras')]\n"
        "loaded += [m for m in sys.modules if m.startswith('parity.cli.commands.')]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_plot_replaces_the_file_and_leaves_no_temporary(tmp_path):
    bundles.write_single(tmp_path / "b")
    (tmp_path / "errors.png").write_bytes(b"old")
    result = _verify(tmp_path / "b", "--device", "cpu", "--plot", tmp_path / "errors.png", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b", "errors.png"]


def test_the_command_table_lists_every_command_module_with_its_own_help():
    import pkgutil

    from parity.cli import commands

    modules = {info.name for info in pkgutil.iter_modules(commands.__path__)}
    assert modules == set(commands.COMMANDS)
    for name, line in commands.COMMANDS.items():
        assert commands.load(name).name == name and commands.load(name).short_help == line
