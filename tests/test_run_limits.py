"""Every ONNX Runtime run is bounded, and every graph is run from the bytes
that were hashed: hostile but self-consistent bundles (their hashes match)
end in one line naming the limit, never in a hang or an exhausted machine.
Built small: a graph of a few hundred bytes, a sparse file."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity import runtime
from parity.cli.app import cli
from parity.runtime import bounds
from parity.runtime.bundle import MAX_GRAPH_BYTES
from parity.runtime.bundle_format.manifest import TensorSpec
from parity.runtime.errors import BundleError, ParameterError
from tests import bundles

ROOT = Path(__file__).resolve().parents[1]
ONE = (TensorSpec("x", "float32", (1,)),)
OUT = (TensorSpec("y", "float32", (1,)),)


def test_an_endless_loop_is_stopped_at_the_time_limit(tmp_path, monkeypatch):
    bundles.write_graph(tmp_path / "b", bundles.endless_loop_graph(), ONE, OUT)
    bundle = runtime.load_bundle(tmp_path / "b", device="cpu")
    monkeypatch.setenv(bounds.MAX_RUN_SECONDS_VARIABLE, "0.3")
    with pytest.raises(
        runtime.LimitError, match=r"beyond the time limit of 0.3 s .*MAX_RUN_SECONDS"
    ):
        bundle.run({"x": np.zeros(1, np.float32)})
    monkeypatch.delenv(bounds.MAX_RUN_SECONDS_VARIABLE)
    assert bounds.run_seconds() == bounds.MAX_RUN_SECONDS


def test_the_cli_says_which_limit_stopped_the_run_and_exits_2(tmp_path, monkeypatch):
    """Not a disagreement of the runtimes (exit 1): a limit, named (exit 2)."""
    golden = {"model/inputs/x": np.zeros(1, np.float32), "model/outputs/y": np.ones(1, np.float32)}
    bundles.write_graph(tmp_path / "b", bundles.endless_loop_graph(), ONE, OUT, golden)
    monkeypatch.setenv(bounds.MAX_RUN_SECONDS_VARIABLE, "0.2")
    result = CliRunner().invoke(cli, ["verify", "-q", str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert "time limit of 0.2 s" in result.stderr and "PARITY_MAX_RUN_SECONDS" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_a_bad_time_limit_is_named(monkeypatch, value):
    monkeypatch.setenv(bounds.MAX_RUN_SECONDS_VARIABLE, value)
    with pytest.raises(ParameterError, match=bounds.MAX_RUN_SECONDS_VARIABLE):
        bounds.run_seconds()


MEMORY_RUN = """
import sys
import numpy as np
from pathlib import Path
from parity import runtime
from parity.runtime import LimitError
bundle = runtime.load_bundle(Path(sys.argv[1]), device="cpu")
try:
    print(bundle.run({"x": np.zeros(1, np.float32)})["y"])
except LimitError as exc:
    print("refused:", exc)
"""


def test_an_allocation_beyond_the_memory_limit_fails_at_once(tmp_path):
    """A 1 GiB array asked for by a 300-byte graph, under a limit of 64 MiB
    (in a process of its own: the limit is set when its first session opens)."""
    graph = bundles.constant_of_shape_graph((2**28,))
    assert len(graph) < 1024
    bundles.write_graph(tmp_path / "b", graph, ONE, OUT)
    env = {**os.environ, bounds.MAX_RUN_BYTES_VARIABLE: str(64 * 2**20)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_RUN, str(tmp_path / "b")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout, done.stdout
    assert "1.0 GiB" in done.stdout and "64.0 MiB" in done.stdout
    assert bounds.MAX_RUN_BYTES_VARIABLE in done.stdout


def test_the_memory_limit_defaults_to_three_quarters_of_the_machine(monkeypatch):
    monkeypatch.delenv(bounds.MAX_RUN_BYTES_VARIABLE, raising=False)
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert bounds.run_bytes() == int(total * bounds.MEMORY_SHARE)
    monkeypatch.setenv(bounds.MAX_RUN_BYTES_VARIABLE, "12345")
    assert bounds.run_bytes() == 12345


def test_a_graph_file_beyond_protobufs_limit_is_refused_before_reading(tmp_path):
    bundles.write_single(tmp_path / "b")
    with open(tmp_path / "b" / "model.onnx", "r+b") as handle:
        handle.truncate(MAX_GRAPH_BYTES + 1)  # sparse: no disk used, and never read
    with pytest.raises(BundleError, match="beyond the 2.0 GiB an ONNX graph file can hold"):
        runtime.load_bundle(tmp_path / "b", device="cpu")
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "beyond the 2.0 GiB" in result.stderr


def test_the_one_row_session_runs_only_the_bytes_that_were_hashed(tmp_path):
    """A graph replaced after the bundle was loaded is never run: the batch
    session runs the bytes read at load, the one-row session hashes again."""
    bundles.write_single(tmp_path / "b")
    bundle = runtime.load_bundle(tmp_path / "b", device="cpu")
    swapped = tmp_path / "swapped"
    bundles.write_single(swapped)
    graph = (swapped / "model.onnx").read_bytes().replace(b"two", b"owt")
    (tmp_path / "b" / "model.onnx").write_bytes(graph)
    feeds = {"x": np.ones((3, 2, 3), np.float32), "ids": np.zeros((3, 2), np.int64)}
    np.testing.assert_array_equal(bundle.run(feeds)["y"], 2 * feeds["x"])
    one = {name: value[:1] for name, value in feeds.items()}
    with pytest.raises(BundleError, match="sha256 does not match the manifest"):
        bundle.run(one)
