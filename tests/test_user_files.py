"""Every file parity writes for a user goes through :mod:`parity.files`, and
so follows one rule, whoever runs it (root included): a regular file is
replaced whole, a link is written through, a device or a stream of the
process is written to and never replaced, a FIFO is written to while a
process reads it and refused otherwise, and nothing is written inside a
bundle folder. Each writer (``verify --json``, ``--plot``, ``--failures``,
``generate -o``, ``train -o``, bench's outputs, ``coverage -o``) against each
kind of target."""

import ast
import dataclasses
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity.cli.app import cli
from parity.runtime.errors import ParityError
from tests import bundles

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _cli(*args) -> None:
    """``parity ARGS``; a refusal (exit 2, one line) raised as ParityError."""
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    if result.exit_code == 2:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        raise ParityError(result.stderr)
    assert result.exit_code == 0, (args, result.output, result.exception)


@dataclasses.dataclass(frozen=True)
class _Failures:
    """What ``write_failures`` reads of a dataset report."""

    failed_inputs: dict
    failures_file: str = ""


class _Model:
    """What ``save_model`` asks of a Keras model."""

    def save(self, path) -> None:
        Path(path).write_bytes(b"PK a model")


def _bench_result():
    from parity.bench.result import BenchResult, Gemm, Row, Settings, Timing

    timing = Timing(0.5, 0.4, 0.6, 3)
    return BenchResult(
        date="2026-01-01T00:00:00+00:00",
        machine={"cpu": "test"},
        settings=Settings(preset="tiny", repeats=3, warmup=0),
        floor=(Gemm(10, 10, 10, timing),),
        rows=(Row("m", 4, "cpu", "onnxruntime", timing, flops=10**9),),
    )


def _writers(folder: Path) -> dict:
    """Each writer: a function of the target path."""
    bundles.write_single(folder / "single")
    bundles.write_seq2seq(folder / "toy")
    np.save(folder / "x.npy", np.zeros((1, 3, bundles.FEATURES), np.float32))

    def failures(path):
        from parity.verify.dataset_report import write_failures

        write_failures(_Failures({"x": np.zeros((1, 2))}), path)

    def bench_json(path):
        from parity.bench.render import write_json

        write_json(_bench_result(), path)

    def bench_plot(path):
        from parity.bench.render import plot

        plot(_bench_result(), path)

    def coverage(path):
        from parity.cli.support_matrix import write_matrix

        write_matrix(path, "parity coverage -o COVERAGE.md", configurations=())

    def train(path):
        from parity.files import save_model

        save_model(_Model(), path)

    return {
        "verify --json": lambda path: _cli("verify", "-q", folder / "single", "--json", path),
        "verify --plot": lambda path: _cli("verify", "-q", folder / "single", "--plot", path),
        "generate -o": lambda path: _cli(
            "generate", folder / "toy", "--input", folder / "x.npy", "-o", path
        ),
        "--failures": failures,
        "bench --json": bench_json,
        "bench --plot": bench_plot,
        "coverage -o": coverage,
        "train -o": train,
    }


NAMES = [
    "verify --json",
    "verify --plot",
    "generate -o",
    "--failures",
    "bench --json",
    "bench --plot",
    "coverage -o",
    "train -o",
]


@pytest.fixture
def writers(tmp_path):
    return _writers(tmp_path)


def _name(writer: str, suffix: str) -> str:
    extension = {"verify --plot": ".png", "bench --plot": ".png", "train -o": ".keras"}
    return f"{suffix}{extension.get(writer, '.out')}"


@pytest.mark.parametrize("writer", NAMES)
def test_a_file_is_replaced_and_a_link_written_through(writers, tmp_path, writer):
    file = tmp_path / _name(writer, "real")
    file.write_bytes(b"old")
    link = tmp_path / _name(writer, "link")
    link.symlink_to(file.name)
    writers[writer](link)
    assert link.is_symlink() and os.readlink(link) == file.name
    assert file.read_bytes() not in (b"", b"old")
    before = sorted(p.name for p in tmp_path.iterdir())
    writers[writer](file)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left beside it


@pytest.mark.skipif(not AS_ROOT, reason="makes device nodes (root)")
@pytest.mark.parametrize("writer", NAMES)
def test_a_device_is_written_to_never_replaced(writers, tmp_path, writer):
    """Device nodes made here, as ``/dev/full`` and ``/dev/null`` are: a full
    device fails the write in one line, a null one takes it; both stay devices."""
    full = tmp_path / _name(writer, "full")
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    with pytest.raises(ParityError, match="No space left on device"):
        writers[writer](full)
    null = tmp_path / _name(writer, "null")
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    writers[writer](null)
    for device in (full, null):
        assert stat.S_ISCHR(os.lstat(device).st_mode)


@pytest.mark.parametrize("writer", NAMES)
def test_a_fifo_is_refused_without_a_reader_and_streamed_to_one(writers, tmp_path, writer):
    fifo = tmp_path / _name(writer, "fifo")
    os.mkfifo(fifo)
    with pytest.raises(ParityError, match="is a FIFO that no process reads"):
        writers[writer](fifo)
    received = []
    opened = threading.Event()

    def read():
        with open(fifo, "rb") as stream:
            opened.set()
            received.append(stream.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not opened.is_set():  # the reader's open returns once the writer opens: poll
        try:
            writers[writer](fifo)
            break
        except ParityError:
            continue
    reader.join(30)
    assert received and received[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("writer", NAMES)
def test_nothing_is_written_inside_a_bundle_folder(writers, tmp_path, writer):
    bundle = tmp_path / "single"
    files = [p for p in sorted(bundle.rglob("*")) if p.is_file()]
    before = {p: p.read_bytes() for p in files}
    inner = next(p.parent for p in files if p.parent != bundle)  # its test data
    targets = (bundle / "manifest.json", bundle / _name(writer, "new"), inner / "new.npy")
    for target in targets:
        with pytest.raises(ParityError, match="is inside the bundle folder"):
            writers[writer](target)
    assert {p: p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()} == before


def test_a_stream_of_the_process_is_written_to(tmp_path):
    """``/dev/stdout`` names this process's own output: written to, never replaced."""
    script = "import numpy as np; from parity.files import save_array; "
    script += "save_array('/dev/stdout', np.arange(3))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x93NUMPY")


# Where a user's files are written: everything else writes through these;
# and the modules that write only into temporary folders of their own.
WRITING_MODULES = {
    "files/replace.py",
    "files/model_file.py",
    "exporter/bundle_writer.py",
    "exporter/load.py",  # a copy of an .h5 with its config rewritten, in a temporary folder
    "cli/model_forms.py",  # the support matrix's models, in its temporary folder
}


def test_only_parity_files_writes_a_users_files():
    """No other module opens a file for writing, replaces or renames one, or
    hands a path (rather than an open stream) to numpy or matplotlib."""
    found = []
    for folder in ("runtime", "files", "models", "exporter", "verify", "bench", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where in WRITING_MODULES:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and _writes(node):
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, "\n".join(found)


def _writes(call: ast.Call) -> bool:
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    if name in ("write_text", "write_bytes", "replace", "rename", "copyfile", "copy", "move"):
        owner = function.value if isinstance(function, ast.Attribute) else None
        return name in ("write_text", "write_bytes") or (
            isinstance(owner, ast.Name) and owner.id in ("os", "shutil")
        )
    if name == "open" and len(call.args) > 1:
        mode = call.args[1]
        return isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    if name in ("save", "savez", "savez_compressed", "savefig") and call.args:
        first = call.args[0]
        return not (isinstance(first, ast.Name) and first.id in ("stream", "buffer"))
    return False
