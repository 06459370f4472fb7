"""``parity demo``: train, export, verify, one table."""

from click.testing import CliRunner

from parity.cli.app import cli


def test_demo_on_one_model(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--only", "seq_tagger", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "seq_tagger" in result.output and "PASS" in result.output
    assert "PASSED: every bundle verified" in result.output
    assert (tmp_path / "seq_tagger" / "manifest.json").exists()


def test_demo_refuses_unknown_names_before_training(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--only", "nope", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output
    assert not any(tmp_path.iterdir())
