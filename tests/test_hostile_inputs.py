"""Hostile paths, files, manifests, arrays and flags: each is refused with one
line (exit 2 on the command line, a ParityError in Python), never a
traceback, a hang, or a verdict on the runtimes. Built small: hand-made
bundles, sparse files, FIFOs."""

import contextlib
import json
import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity import runtime
from parity.cli.app import cli
from parity.runtime.bundle_format.digest import sha256_file
from parity.runtime.bundle_format.manifest import MANIFEST_NAME
from parity.runtime.errors import BundleError, ParityError
from tests import bundles


@pytest.fixture
def toy(tmp_path):
    bundles.write_seq2seq(tmp_path / "toy")
    return tmp_path / "toy"


def refused(args: list, *words: str) -> str:
    """``parity ARGS`` exits 2 with one line ``error: ...`` holding ``words``."""
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return result.stderr


def _manifest(bundle: Path, change) -> None:
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    change(data)
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))


# --- item 9: tracebacks that are one line now --------------------------------


@pytest.mark.parametrize("feeds", [[1, 2], np.zeros(3), None, {}, np.array(1.0)])
def test_the_python_api_refuses_what_is_not_a_dict_of_arrays(single, toy, feeds):
    with pytest.raises(ParityError):
        runtime.load_bundle(single, device="cpu").run(feeds)
    with pytest.raises(ParityError):
        runtime.generate(runtime.load_bundle(toy, device="cpu"), feeds)


def test_a_bundle_folder_that_links_to_itself(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    refused(["verify", tmp_path / "loop"], "a symbolic link loop")
    with pytest.raises(BundleError, match="a symbolic link loop"):
        runtime.load_bundle(tmp_path / "loop")


def test_names_and_paths_longer_than_a_file_system_takes(single, toy, tmp_path):
    refused(["verify", tmp_path / ("n" * 300)], "a name of 300 bytes")
    refused(["verify", tmp_path / ("d/" * 2500)], "a path of", "longer than the 4095")
    refused(["verify", "-q", tmp_path / ("n" * 300), single], "a name of 300 bytes")
    refused(["generate", toy, "--input", "x" * 300, "-o", tmp_path / "o.npy"], "300 bytes")
    refused(["generate", toy, "--input", "x.npy", "-o", "o" * 300], "--output: ", "300 bytes")


def test_generate_with_an_input_of_the_wrong_rank_or_without_the_encoder_input(toy, tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(4, np.float32))
    np.savez(tmp_path / "other.npz", other=np.zeros((1, 3, 2), np.float32))
    out = tmp_path / "out.npy"
    refused(["generate", toy, "--input", tmp_path / "flat.npy", "-o", out], "rank 1")
    refused(["generate", toy, "--input", tmp_path / "other.npz", "-o", out], "'other'")
    assert not out.exists()


@pytest.mark.parametrize("file", ["model.onnx", "golden.npz"])
def test_an_unreadable_graph_or_golden_file(single, monkeypatch, file):
    """Root reads every file: unreadable is simulated where the file is read."""
    from parity.runtime import bundle
    from parity.runtime.bundle_format import golden

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    if file == "model.onnx":
        monkeypatch.setattr(Path, "read_bytes", denied)
    else:
        monkeypatch.setattr(golden, "sha256_file", denied)
    assert bundle is not None
    refused(["verify", "-q", single], "Permission denied")


def test_a_horizon_beyond_the_limit_is_refused_before_tensorflow(toy):
    refused(["verify", "-q", "m.keras", toy, "--steps", "99999999999999999999"], "--steps")
    refused(["generate", toy, "--input", "x.npy", "-o", "o.npy", "--steps", "9" * 20], "--steps")


# --- item 10: what was accepted silently --------------------------------------


@pytest.mark.parametrize(
    ("side", "field", "value", "words"),
    [
        ("outputs", "dtype", "float64", "type float32"),
        ("inputs", "shape", ["batch", 1, 1, 1, 1, 3], "rank 3"),
        ("inputs", "shape", ["batch", "time", 4], "size 3 on axis 2"),
        ("outputs", "shape", ["batch", "time", 5], "size 3 on axis 2"),
    ],
)
def test_a_manifest_that_misdescribes_its_graph_is_refused(single, side, field, value, words):
    _manifest(single, lambda m: m["graphs"]["model"][side][0].update({field: value}))
    with pytest.raises(BundleError, match="the bundle does not match its manifest") as caught:
        runtime.load_bundle(single, device="cpu")
    assert words in str(caught.value)


def test_a_graph_fixed_where_the_manifest_says_dynamic_is_refused(tmp_path):
    """The graph takes 3 rows only; the manifest promises any batch."""
    from parity.runtime.bundle_format.manifest import TensorSpec

    spec = (TensorSpec("x", "float32", ("batch",)),)
    graph = bundles._model(
        [bundles.helper.make_node("Identity", ["x"], ["y"])],
        [bundles._value("x", bundles.TensorProto.FLOAT, [3])],
        [bundles._value("y", bundles.TensorProto.FLOAT, [3])],
    )
    bundles.write_graph(tmp_path / "b", graph, spec, (TensorSpec("y", "float32", ("batch",)),))
    with pytest.raises(BundleError, match="has size 3 on axis 0, the manifest says batch"):
        runtime.load_bundle(tmp_path / "b", device="cpu")


# --- item 11: golden data that does not fit its manifest -----------------------


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("model/outputs/y", np.zeros((1, 4, 3), np.float64), "float64"),
        ("model/outputs/y", np.zeros((1, 4, 2), np.float32), "(1, 4, 2)"),
        ("model/inputs/x", np.zeros((1, 4), np.float32), "rank 2"),
        ("model/outputs/w", np.zeros((1, 4, 3), np.float32), "names no tensor"),
    ],
)
def test_golden_data_that_does_not_fit_the_manifest_exits_2(single, key, value, words):
    from parity.exporter.bundle_writer import npz_bytes

    golden = dict(np.load(single / "golden.npz"))
    golden[key] = value
    (single / "golden.npz").write_bytes(npz_bytes(golden))
    digest = sha256_file(single / "golden.npz")
    _manifest(single, lambda m: m["golden"].update(sha256=digest))
    refused(["verify", "-q", single], "the bundle does not match its manifest", words)


def test_an_interrupt_exits_130_and_never_1(single, tmp_path, monkeypatch):
    """Ctrl-C in ``verify`` and in ``verify --data``: nothing was judged."""
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    for module, name, args in (
        ("parity.verify.check", "check", [single]),
        ("parity.verify.dataset", "check_dataset", ["m.keras", single, "--data", tmp_path]),
    ):
        monkeypatch.setattr(importlib.import_module(module), name, interrupted)
        result = CliRunner().invoke(cli, ["verify", "-q", *map(str, args)])
        assert result.exit_code == 130, result.output
        assert result.stderr == "error: interrupted; nothing was judged\n"


# --- item 7 and 10: FIFOs and devices where a file is expected ------------------


@pytest.fixture
def fifo(tmp_path):
    """A FIFO that no process writes to; should anything open it, a helper
    opens its other end every 10 s, so that a regression fails rather than hangs."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    done = threading.Event()

    def release():
        while not done.wait(10):
            with contextlib.suppress(OSError), open(path, "wb"):
                pass

    threading.Thread(target=release, daemon=True).start()
    yield path
    done.set()


def _named(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def test_model_files_that_are_fifos_or_devices_are_refused_before_opening(fifo, tmp_path):
    from parity.exporter.load import load_keras

    for path, kind in (
        (_named(tmp_path / "fifo.keras", fifo), "a FIFO"),
        (_named(tmp_path / "zero.keras", Path("/dev/zero")), "a character device"),
        (_named(tmp_path / "zero.h5", Path("/dev/zero")), "a character device"),
    ):
        with pytest.raises(ParityError, match=f"is {kind}, expected a regular model file"):
            load_keras(path)


def test_arrays_that_are_fifos_or_devices_are_refused(fifo, single, toy, tmp_path):
    zero = _named(tmp_path / "zero.npz", Path("/dev/zero"))
    for path in (fifo, zero):
        refused(["verify", "-q", "m.keras", single, "--inputs", path], "expected a regular file")
        out = tmp_path / "out.npy"
        refused(["generate", toy, "--input", path, "-o", out], "expected a regular file")
        refused(["generate", toy, "--input", path.with_suffix(".npy"), "-o", out])


@pytest.mark.parametrize("member", ["model.onnx", "golden.npz", "manifest.json"])
def test_bundle_files_that_are_fifos_or_devices_are_refused(fifo, single, member):
    (single / member).unlink()
    os.mkfifo(single / member)
    refused(["verify", "-q", single], "is a FIFO")
    (single / member).unlink()
    (single / member).symlink_to("/dev/zero")
    refused(["verify", "-q", single], "link out of" if member == MANIFEST_NAME else "outside the")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # a device node in the bundle itself
        (single / member).unlink()
        os.mknod(single / member, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # as /dev/zero
        refused(["verify", "-q", single], "is a character device")


def test_shards_that_are_fifos_or_devices_are_refused_not_skipped(fifo, single, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "a.npz", x=np.zeros((2, 4, 3), np.float32), ids=np.zeros((2, 4), np.int64))
    _named(data / "b.npz", fifo)
    args = ["verify", "-q", "m.keras", single, "--data"]
    refused([*args, data], "b.npz: is a FIFO", "named like a shard")
    (data / "b.npz").unlink()
    _named(data / "c.parquet", Path("/dev/zero"))
    refused([*args, data], "c.parquet: is a character device")
    refused([*args, data / "c.parquet"], "is a character device")


def test_h5_model_config_is_measured_by_its_real_length(tmp_path, monkeypatch):
    """h5py writes a str as a variable-length string, whose storage size is
    16 bytes however long it is: the text itself is measured."""
    import h5py

    from parity.exporter import load

    monkeypatch.setattr(load, "MAX_CONFIG_BYTES", 1000)
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "pad": "p" * 2000})
    assert h5py.h5a.open(h5py.File(tmp_path / "m.h5").id, b"model_config").get_storage_size() < 100
    with pytest.raises(ParityError, match="model_config takes 2.0 KiB, beyond the limit"):
        load.load_keras(tmp_path / "m.h5")
    with h5py.File(tmp_path / "n.h5", "w") as h5:
        h5.attrs["model_config"] = ["{}", "{}"]
    with pytest.raises(ParityError, match="model_config is not one string"):
        load.load_keras(tmp_path / "n.h5")


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "a/../../evil", "config.json"])
def test_a_keras_archive_with_members_outside_it_is_refused(tmp_path, name):
    import zipfile

    from parity.exporter.load import load_keras

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of a duplicate name
            archive.writestr(name, "x")
    words = "two members named" if name == "config.json" else "outside the archive"
    with pytest.raises(ParityError, match=words):
        load_keras(path)


# --- item 10: absurd flags --------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--rtol", "inf"], "--rtol"),
        (["--rtol", "1"], "--rtol: 1.0 would pass anything"),
        (["--rtol", "y=2"], "--rtol: 2.0 would pass anything"),
        (["--atol", "nan"], "--atol"),
        (["--atol", "1e999"], "--atol"),
        (["--growth", "inf"], "--growth"),
    ],
)
def test_tolerances_that_pass_anything_are_refused(single, flags, words):
    refused(["verify", "-q", single, *flags], words)


def test_a_batch_beyond_the_array_limit_is_refused(single, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 3), np.float32), ids=np.zeros((2, 4), np.int64))
    args = ["verify", "-q", "m.keras", single]
    refused([*args, "--data", tmp_path / "d.npz", "--batch-size", "10000000000000"], "--batch-size")
    refused([*args, "--batch", "10000000000000"], "--batch: inputs of 10000000000000 rows")
    refused([*args, "--time", "10000000000000"], "of 10000000000000 steps")


# --- beyond the issue: outputs that are inputs, export targets ------------------


def test_an_output_that_is_an_input_is_refused_before_any_work(single, toy, tmp_path):
    """``--json model.keras`` would replace the model with a report."""
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK a model")
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "a.npz", x=np.zeros((1, 4, 3), np.float32), ids=np.zeros((1, 4), np.int64))
    verify = ["verify", "-q", model, single]
    refused([*verify, "--json", model], "--json", "is also an input of this command")
    refused([*verify, "--plot", model], "--plot", "is also an input of this command")
    refused([*verify, "--data", data, "--json", data / "r.json"], "inside a folder this command")
    refused([*verify, "--data", data / "a.npz", "--failures", data / "a.npz"], "--failures")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, bundles.FEATURES), np.float32))
    x = tmp_path / "x.npy"
    refused(["generate", toy, "--input", x, "-o", x], "--output", "is also an input")
    assert model.read_bytes() == b"PK a model" and np.load(x).shape == (1, 3, bundles.FEATURES)


def test_export_to_a_link_loop_or_a_name_too_long(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    refused(["export", model, tmp_path / "loop"], "a symbolic link loop")
    refused(["export", tmp_path / "loop", tmp_path / "out"], "a symbolic link loop")
    refused(["export", model, tmp_path / ("n" * 300)], "a name of 300 bytes")


def test_a_generation_beyond_the_array_limit_is_refused_before_it_runs(toy, monkeypatch):
    monkeypatch.setenv("PARITY_MAX_ARRAY_BYTES", "4096")
    bundle = runtime.load_bundle(toy, device="cpu")
    x = np.zeros((100, 3, bundles.FEATURES), np.float32)
    with pytest.raises(ParityError, match="100 steps of 100 rows take 78.1 KiB, beyond"):
        runtime.generate(bundle, {"encoder_input": x}, steps=100)


def test_a_stop_token_the_model_cannot_emit_is_refused(tmp_path):
    bundles.write_seq2seq(tmp_path / "tokens", feedback="argmax_onehot")
    np.save(tmp_path / "x.npy", np.zeros((2, 3, bundles.FEATURES), np.float32))
    args = ["generate", tmp_path / "tokens", "--input", tmp_path / "x.npy", "-o", tmp_path / "o"]
    for token in ("9" * 25, "-5", str(bundles.FEATURES)):
        refused([*args, "--stop-token", token], "--stop-token: ", "not a token the model emits")
    assert not (tmp_path / "o").exists()


def test_an_npz_with_two_arrays_of_one_name_is_refused(toy, tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 3, bundles.FEATURES), np.float32))
    with warnings.catch_warnings(), zipfile.ZipFile(tmp_path / "twice.npz", "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        archive.writestr("encoder_input.npy", buffer.getvalue())
        archive.writestr("encoder_input.npy", buffer.getvalue())
    out = tmp_path / "o.npy"
    refused(["generate", toy, "--input", tmp_path / "twice.npz", "-o", out], "two arrays named")
