"""Writing and loading bundles safely: no folder of the user's is ever replaced,
the destination holds a whole bundle at every instant, external data is
hashed, and files get the user's umask."""

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from parity import runtime
from parity.exporter import bundle_writer as writer
from parity.exporter.bundle_writer import check_out_dir
from parity.runtime.bundle_format.digest import sha256_file
from parity.runtime.bundle_format.manifest import MANIFEST_NAME, read_manifest
from parity.runtime.errors import BundleError, ParityError
from parity.runtime.npy import load_arrays
from tests import bundles

OLD, NEW = 1.0, 3.0
KILLED = 9


def _whole(path):
    """The factor of the bundle at ``path`` (see ``bundles.write_single``),
    once every file the manifest names is there with its sha256."""
    manifest = read_manifest(path)
    for graph in manifest.graphs.values():
        assert sha256_file(path / graph.file) == graph.sha256
    assert sha256_file(path / manifest.golden["file"]) == manifest.golden["sha256"]
    golden = load_arrays(path / manifest.golden["file"])
    return float(golden["model/outputs/y"][0, 1, 0] / golden["model/inputs/x"][0, 1, 0])


def _tree(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- never replacing a user's folder --------------------------------------------


def _user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("results of a week\n")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2\n")
    return _tree(path)


@pytest.mark.parametrize("manifest", [None, "{}", "not json", '{"format": "parity-bundle"}'])
def test_a_folder_that_is_not_a_bundle_is_refused_and_left_untouched(tmp_path, manifest):
    out = tmp_path / "mydata"
    _user_folder(out)
    if manifest is not None:
        (out / MANIFEST_NAME).write_text(manifest)
    before = _tree(out)
    for write in (bundles.write_single, bundles.write_seq2seq):
        with pytest.raises(ParityError, match="not a parity bundle") as caught:
            write(out)
        assert "left untouched" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata"]


def test_an_empty_folder_or_a_bundle_is_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundles.write_single(out, factor=OLD)
    assert _whole(out) == OLD
    bundles.write_single(out, factor=NEW)
    assert _whole(out) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_holding_the_source_is_refused(tmp_path):
    out = tmp_path / "out"
    bundles.write_single(out)
    (out / "sub").mkdir()
    for source in (out / "m.keras", out / "sub" / "m.keras"):
        source.write_bytes(b"a model")
        with pytest.raises(ParityError, match="holds the source model m.keras"):
            check_out_dir(out, source=source)
        check_out_dir(tmp_path / "other", source=source)


def test_a_link_to_a_bundle_keeps_pointing_at_the_new_bundle(tmp_path):
    bundles.write_single(tmp_path / "real", factor=OLD)
    (tmp_path / "link").symlink_to("real")
    bundles.write_single(tmp_path / "link", factor=NEW)
    assert (tmp_path / "link").is_symlink()
    assert _whole(tmp_path / "link") == NEW


# --- a whole bundle at every instant --------------------------------------------

STEPPED_WRITE = """
import os, shutil, sys
from pathlib import Path
from parity.exporter import bundle_writer as writer
from tests import bundles

out, mode, stop, when = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
killed, new = int(sys.argv[5]), float(sys.argv[6])
calls = 0

def stepped(function):
    def step(*args, **kwargs):
        global calls
        calls += 1
        if calls == stop and when == "before":
            os._exit(killed)
        result = function(*args, **kwargs)
        if calls == stop and when == "after":
            os._exit(killed)
        return result
    return step

if mode == "fallback":
    writer._renameat2 = lambda *args: False
else:
    writer._renameat2 = stepped(writer._renameat2)
os.rename = stepped(os.rename)
shutil.rmtree = stepped(shutil.rmtree)
bundles.write_single(out, factor=new)
"""


def _killed_write(out, mode, stop, when):
    """Write the NEW bundle over ``out`` in a process that dies just ``when``
    ("before" or "after") its ``stop``-th rename or removal; its exit status."""
    done = subprocess.run(
        [sys.executable, "-c", STEPPED_WRITE, out, mode, str(stop), when, str(KILLED), str(NEW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, KILLED), done.stderr
    return done.returncode


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_process_killed_at_any_step_leaves_a_whole_bundle(tmp_path, mode):
    """Kill the writer before and after each step of the swap: with the
    exchange the folder holds the old or the new bundle at every point; with
    two renames it may be missing, and then a load reads the old one where
    it was set aside, renaming nothing. Either way the next export leaves
    nothing behind."""
    out = tmp_path / "out"
    bundles.write_single(out, factor=OLD)
    points = []
    for stop in range(1, 10):
        for when in ("before", "after"):
            if _killed_write(out, mode, stop, when) == 0:
                break
            points.append((stop, when))
            if mode == "exchange" or out.exists():
                found = _whole(out)
            else:
                assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.old.")]
                before = sorted(tmp_path.iterdir())
                loaded = runtime.load_bundle(out, device="cpu")
                assert sorted(tmp_path.iterdir()) == before  # nothing renamed or written
                found = _whole(loaded.path)
                assert found == OLD
            assert found in (OLD, NEW), (stop, when)
            bundles.write_single(out, factor=OLD)
            assert [p.name for p in tmp_path.iterdir()] == ["out"], (stop, when)
        else:
            continue
        break
    assert len(points) >= (4 if mode == "exchange" else 6)
    assert _whole(out) == NEW


KILLED_LOOP = """
import sys
from pathlib import Path
from tests import bundles

out, old, new = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
bundles.write_single(out, factor=old)
print("ready", flush=True)
factor = old
while True:
    factor = old + new - factor
    bundles.write_single(out, factor=factor)
"""


def test_sigkill_while_exporting_again_and_again(tmp_path):
    out = tmp_path / "out"
    chance = random.Random(0)
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_LOOP, out, str(OLD), str(NEW)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline() == "ready\n"
        time.sleep(chance.uniform(0.05, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        assert _whole(out) in (OLD, NEW)
    bundles.write_single(out, factor=OLD)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_writers_at_once_on_one_folder(tmp_path, monkeypatch, exchange):
    """Concurrent exports raise no OSError; the last one wins; with the
    exchange, the folder never lacks its manifest, even for an instant."""
    if not exchange:
        monkeypatch.setattr(writer, "_renameat2", lambda *args: False)
    out = tmp_path / "out"
    bundles.write_single(out, factor=OLD)
    unexpected, missing = [], []
    writing = threading.Event()
    writing.set()

    def write(factor):
        for _ in range(8):
            try:
                bundles.write_single(out, factor=factor)
            except ParityError:
                pass  # a clean refusal is allowed; anything else is not
            except BaseException as exc:
                unexpected.append(exc)

    def watch():
        while writing.is_set():
            if not (out / MANIFEST_NAME).is_file():
                missing.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    writers = [threading.Thread(target=write, args=(f,)) for f in (OLD, NEW, OLD, NEW)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    watcher.join()
    assert not unexpected
    if exchange:
        assert not missing
    assert _whole(out) in (OLD, NEW)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_leftovers_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    bundles.write_single(out, factor=OLD)
    dead = _dead_pid()
    stale = [f".out.new.{dead}.abcd1234", f".out.old.{dead}.efgh5678", ".out.new.1.old_one"]
    live = [f".out.new.{os.getpid()}.live1234", f".out.old.{os.getpid()}.live5678"]
    others = [".out.new.notapid.x", ".outer.new.1.abc", "notes.new.1.abc"]
    for name in stale + live + others:
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")
    hours_ago = time.time() - 2 * 3600
    os.utime(tmp_path / ".out.new.1.old_one", (hours_ago, hours_ago))
    os.utime(tmp_path / live[0], (time.time(), time.time()))
    bundles.write_single(out, factor=NEW)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *live, *others])


def test_load_reads_a_bundle_a_stopped_export_set_aside_and_export_puts_it_back(tmp_path):
    out = tmp_path / "out"
    bundles.write_single(out, factor=OLD)
    aside = tmp_path / f".out.old.{_dead_pid()}.abcd1234"
    out.rename(aside)
    tmp_path.chmod(0o555)  # loading writes nothing, so a read-only folder is no obstacle
    try:
        loaded = runtime.load_bundle(out, device="cpu")
    finally:
        tmp_path.chmod(0o755)
    assert loaded.manifest.name == "scale" and loaded.path == aside
    assert [p.name for p in tmp_path.iterdir()] == [aside.name]
    bundles.write_single(out, factor=NEW)  # the next export finishes the swap
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    live = tmp_path / f".out.old.{os.getpid()}.abcd1234"
    out.rename(live)  # a live export between its two renames: not taken
    with pytest.raises(BundleError, match="no such directory"):
        runtime.load_bundle(out, device="cpu")
    assert live.is_dir()


# --- external data --------------------------------------------------------------


def test_listed_external_data_loads_and_runs(tmp_path):
    bundles.write_external(tmp_path / "b")
    x = np.ones((2, 4, 3), np.float32)
    y = runtime.load_bundle(tmp_path / "b", device="cpu").run({"x": x})["y"]
    np.testing.assert_array_equal(y, 2 * x * np.array([1, 2, 3], np.float32))


def test_tampered_external_data_is_refused(tmp_path):
    bundles.write_external(tmp_path / "b")
    weights = tmp_path / "b" / bundles.EXTERNAL_FILE
    weights.write_bytes(np.array([9.0, 9.0, 9.0], np.float32).tobytes())
    with pytest.raises(BundleError, match="weights.bin: sha256 does not match"):
        runtime.load_bundle(tmp_path / "b", device="cpu")
    weights.unlink()
    with pytest.raises(BundleError, match="external data file 'weights.bin' is missing"):
        runtime.load_bundle(tmp_path / "b", device="cpu")


def test_external_data_not_listed_is_refused(tmp_path):
    """The only external tensor is inside an If branch: subgraphs are read too."""
    bundles.write_external(tmp_path / "b", listed=False)
    with pytest.raises(BundleError, match="reads external data 'weights.bin' that the manifest"):
        runtime.load_bundle(tmp_path / "b", device="cpu")


# --- the user's umask -----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_bundles_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert writer.current_umask() == umask
        bundles.write_single(tmp_path / "b")
    finally:
        os.umask(old)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o777 & ~umask
    for path in (tmp_path / "b").rglob("*"):
        created = 0o777 if path.is_dir() else 0o666
        assert path.stat().st_mode & 0o777 == created & ~umask, path


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_a_folder_that_appears_during_the_export_is_put_back(tmp_path, monkeypatch, exchange):
    """Another program puts a folder of its own at the destination after the
    export checked it: the export swaps it back and refuses."""
    out = tmp_path / "out"
    bundles.write_single(out, factor=OLD)
    rename, swap = os.rename, writer._renameat2
    replaced = []

    def replace_first(function):
        def step(source, destination, *flags):
            if not replaced:
                replaced.append(True)
                shutil.rmtree(out)
                _user_folder(out)
            return function(source, destination, *flags)

        return step

    if exchange:
        monkeypatch.setattr(writer, "_renameat2", replace_first(swap))
    else:
        monkeypatch.setattr(writer, "_renameat2", lambda *args: False)
        monkeypatch.setattr(os, "rename", replace_first(rename))
    with pytest.raises(ParityError, match="not a parity bundle"):
        bundles.write_single(out, factor=NEW)
    assert (out / "notes.txt").read_text() == "results of a week\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_another_export_that_gets_in_first_is_replaced(tmp_path, monkeypatch, exchange):
    """Another export places its bundle just before this export renames its
    own into place (the destination missing, or its old bundle set aside):
    this one tries again and wins."""
    out = tmp_path / "out"
    others = []

    def other_first(function, when):
        def step(*args):
            if not others and when(*args):
                others.append(True)
                bundles.write_single(out, factor=OLD)
            return function(*args)

        return step

    def into_missing(source, destination, flags):
        return flags == writer._RENAME_NOREPLACE

    def into_place(source, destination):
        return Path(destination) == out

    if exchange:
        monkeypatch.setattr(writer, "_renameat2", other_first(writer._renameat2, into_missing))
    else:
        bundles.write_single(out, factor=OLD)
        monkeypatch.setattr(writer, "_renameat2", lambda *args: False)
        monkeypatch.setattr(os, "rename", other_first(os.rename, into_place))
    bundles.write_single(out, factor=NEW)
    assert others
    assert _whole(out) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
