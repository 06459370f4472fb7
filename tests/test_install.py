"""Installs that resolve everywhere, and a runtime that runs without TensorFlow.

The built wheel's requirements are read from its metadata with their
environment markers evaluated for each platform (pip evaluates markers for
the machine it runs on, whatever ``--platform`` says), and their resolution
is asked of the package index for that platform (pip's ``--dry-run
--platform``); skipped, saying why, where the index cannot be reached. The
runtime-only install is made for real into a folder and run with nothing
else on the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests import bundles

MANYLINUX = [f"manylinux_2_{minor}" for minor in range(17, 40)] + ["manylinux2014"]
PLATFORMS = {
    "linux-x86_64": [f"{tag}_x86_64" for tag in MANYLINUX],
    "linux-aarch64": [f"{tag}_aarch64" for tag in MANYLINUX],
    "macos-arm64": [f"macosx_{major}_0_arm64" for major in range(11, 16)],
    "windows-amd64": ["win_amd64"],
}
# What environment markers see on each platform.
MARKERS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64", "os_name": "posix"},
    "linux-aarch64": {"sys_platform": "linux", "platform_system": "Linux",
                      "platform_machine": "aarch64", "os_name": "posix"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin",
                    "platform_machine": "arm64", "os_name": "posix"},
    "windows-amd64": {"sys_platform": "win32", "platform_system": "Windows",
                      "platform_machine": "AMD64", "os_name": "nt"},
}  # fmt: skip
# (platform, extras, the ONNX Runtime build expected, TensorFlow expected)
CASES = [
    *((platform, "onnxruntime", "onnxruntime", False) for platform in PLATFORMS),
    ("linux-x86_64", "onnxruntime-gpu", "onnxruntime-gpu", False),
    ("linux-aarch64", "onnxruntime-gpu", "onnxruntime-gpu", False),
    ("windows-amd64", "onnxruntime-gpu", "onnxruntime-gpu", False),
    ("macos-arm64", "onnxruntime-gpu", "onnxruntime", False),
    ("linux-x86_64", "toolkit,onnxruntime-gpu", "onnxruntime-gpu", True),
    ("macos-arm64", "toolkit,onnxruntime", "onnxruntime", True),
    ("linux-aarch64", "toolkit,onnxruntime", "onnxruntime", True),
    ("windows-amd64", "toolkit,onnxruntime", "onnxruntime", True),
]
_OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


def requirements(wheel, platform: str, extras: set[str]) -> list[str]:
    """The wheel's requirements on ``platform`` with ``extras``, markers
    evaluated for that platform, its own extras (``parity[...]``) followed."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    declared = [Requirement(line.split(":", 1)[1].strip())
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")]  # fmt: skip
    wanted, found, pending = set(), [], {"", *extras}
    while pending:
        extra = pending.pop()
        wanted.add(extra)
        for requirement in declared:
            environment = {**MARKERS[platform], "python_version": "3.11", "extra": extra}
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            if requirement.marker is None and extra:
                continue
            if requirement.name == "parity":
                pending |= set(requirement.extras) - wanted
                continue
            plain = Requirement(str(requirement))
            plain.marker = None
            found.append(str(plain))
    return sorted(set(found))


def _pip_install(*args: str) -> None:
    """``pip install --quiet --ignore-installed ARGS``; skipped where the
    package index cannot be reached."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--ignore-installed", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 and any(marker in done.stderr for marker in _OFFLINE):
        pytest.skip(f"the package index cannot be reached: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]


def _resolved(wheel, platform, extras, tmp_path) -> list[str]:
    report = tmp_path / "report.json"
    tags = [argument for tag in PLATFORMS[platform] for argument in ("--platform", tag)]
    wanted = requirements(wheel, platform, set(extras.split(",")) - {""})
    _pip_install("--dry-run", "--only-binary=:all:", "--python-version", "3.11",
                 "--implementation", "cp", *tags, "--report", str(report), *wanted)  # fmt: skip
    return [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]


@pytest.mark.parametrize(("platform", "extras", "build", "tensorflow"), CASES)
def test_installs_resolve_on_every_platform(
    parity_wheel, tmp_path, platform, extras, build, tensorflow
):
    names = _resolved(parity_wheel, platform, extras, tmp_path)
    builds = [name for name in names if name in ("onnxruntime", "onnxruntime-gpu")]
    assert builds == [build]  # one ONNX Runtime, never both
    assert ("tensorflow" in names) == tensorflow


def test_without_an_extra_no_onnx_runtime_is_installed(parity_wheel, tmp_path):
    """An environment that has one keeps it: plain ``parity`` brings neither."""
    names = _resolved(parity_wheel, "linux-x86_64", "", tmp_path)
    assert "onnxruntime" not in names and "onnxruntime-gpu" not in names


def test_the_runtime_alone_installs_light_and_runs_without_tensorflow(parity_wheel, tmp_path):
    target = tmp_path / "site"
    _pip_install("--target", str(target), f"{parity_wheel}[onnxruntime]")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    assert size < 300 * 2**20, f"{size / 2**20:.0f} MB"
    names = {p.name.split("-")[0].lower() for p in target.glob("*.dist-info")}
    assert "tensorflow" not in names and "onnxruntime" in names and "onnxruntime_gpu" not in names
    single, seq2seq = tmp_path / "single", tmp_path / "seq2seq"
    bundles.write_single(single)
    bundles.write_seq2seq(seq2seq)
    np.save(tmp_path / "x.npy", np.ones((2, 4, 2), np.float32))
    # -S: the standard library and the install folder alone, no site-packages
    environment = {"PYTHONPATH": str(target), "PATH": os.environ.get("PATH", "")}

    def parity(*args):
        return subprocess.run(
            [sys.executable, "-S", "-m", "parity", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=environment,
        )

    assert parity("--help").returncode == 0
    verified = parity("verify", single, "-q")
    assert verified.returncode == 0, verified.stderr
    generated = parity("generate", seq2seq, "--input", "x.npy", "-o", "y.npy", "--steps", "3")
    assert generated.returncode == 0, generated.stderr
    assert np.load(tmp_path / "y.npy").shape[:2] == (2, 3)
    code = "import tensorflow"
    blocked = subprocess.run(
        [sys.executable, "-S", "-c", code], env=environment, capture_output=True
    )
    assert blocked.returncode != 0  # nothing here could have used it


def _dist_info(folder, name: str, version: str) -> None:
    """An installed distribution's record as pip writes it, in ``folder``."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def _warnings_on_load(tmp_path, monkeypatch, caplog, *folders) -> list[str]:
    from parity import runtime
    from parity.runtime import providers

    for folder in folders:
        monkeypatch.syspath_prepend(str(folder))
    providers.onnxruntime.cache_clear()
    bundles.write_single(tmp_path / "b")
    try:
        with caplog.at_level("WARNING", logger="parity"):
            runtime.load_bundle(tmp_path / "b", device="cpu")
            runtime.load_bundle(tmp_path / "b", device="cpu")
    finally:
        providers.onnxruntime.cache_clear()
    return [record.getMessage() for record in caplog.records]


def test_both_onnx_runtime_builds_in_one_folder_is_said_in_one_warning_line(
    tmp_path, monkeypatch, caplog
):
    shared = tmp_path / "site-packages"
    _dist_info(shared, "onnxruntime", "1.32.0")
    _dist_info(shared, "onnxruntime-gpu", "1.31.1")
    (line,) = _warnings_on_load(tmp_path, monkeypatch, caplog, shared)  # once per process
    assert "\n" not in line and "onnxruntime 1.32.0 and onnxruntime-gpu 1.31.1" in line
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in line


def test_builds_in_separate_folders_do_not_collide_and_are_not_warned_of(
    tmp_path, monkeypatch, caplog
):
    """One build in a folder ahead of the other on the path (``pip install
    --target``): each has its own ``onnxruntime`` folder, nothing is overwritten."""
    first, second = tmp_path / "target", tmp_path / "site-packages"
    _dist_info(first, "onnxruntime-gpu", "1.31.1")
    _dist_info(second, "onnxruntime", "1.30.0")
    assert _warnings_on_load(tmp_path, monkeypatch, caplog, second, first) == []
