"""Shared fixtures. Training the tiny zoo once per session keeps the suite fast."""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from parity import models  # plain tables: importing the zoo does not import TensorFlow
from parity.files import save_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class TrainedModel:
    """One zoo model trained on its tiny preset with seed 0, saved at ``path``."""

    entry: models.ZooEntry
    result: models.TrainResult
    path: Path

    @property
    def model(self) -> Any:
        return self.result.model


class TrainedZoo:
    """``trained_zoo[name]`` trains a model the first time it is asked for, so
    that a session trains only the models its tests use, each once."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._trained: dict[str, TrainedModel] = {}

    def __getitem__(self, name: str) -> TrainedModel:
        if name not in self._trained:
            result = models.train(name, preset="tiny", seed=0)
            path = save_model(result.model, self._folder / f"{name}.keras")
            self._trained[name] = TrainedModel(models.get(name), result, path)
        return self._trained[name]


@pytest.fixture(scope="session")
def trained_zoo(tmp_path_factory) -> TrainedZoo:
    return TrainedZoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def exported_zoo(trained_zoo, tmp_path_factory) -> dict[str, tuple[TrainedModel, Any, Path]]:
    """Every zoo model exported once: name -> (trained model, manifest, bundle path)."""
    from parity.exporter import export_keras

    folder = tmp_path_factory.mktemp("bundles")
    bundles = {}
    for name in models.names():
        manifest = export_keras(trained_zoo[name].path, folder / name)
        bundles[name] = (trained_zoo[name], manifest, folder / name)
    return bundles


@pytest.fixture(scope="session")
def parity_wheel(tmp_path_factory) -> Path:
    """The wheel of the checkout as committed (its tracked files), built once."""
    pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parent.parent
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"  # a copy: building writes build/ and *.egg-info beside it
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if (root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(folder), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = folder.glob("parity-*.whl")
    return wheel


@pytest.fixture
def single(tmp_path) -> Path:
    """A small hand-built single-graph bundle (``tests.bundles.write_single``)."""
    from tests import bundles

    bundles.write_single(tmp_path / "single")
    return tmp_path / "single"
