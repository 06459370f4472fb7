"""README's code runs as written: its two set-up commands name extras the
package has, and its Python blocks run after ``parity demo`` (here: the
demo's folder made from the session's exported zoo, which is what the demo
writes) and the streaming example's own ``parity export ... --streaming``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
STREAM_EXPORT = re.findall(r"^    parity (export \S+ \S+ --streaming)$", README, re.M)


def test_the_set_up_commands_name_real_extras_and_commands():
    commands = re.findall(r"^    (pip install .*)$", README, re.M)
    assert commands[:2] == [
        'pip install -e ".[toolkit,onnxruntime-gpu]" && parity demo',
        'pip install -e ".[test]" && python -m pytest -q',
    ]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for command in commands:
        for named in re.findall(r"\.\[([^\]]+)\]", command):
            assert set(named.split(",")) <= set(extras), command
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].replace("-e ", "-q -e ") in ci


def test_the_python_blocks_run_after_the_demo(exported_zoo, tmp_path):
    demo = tmp_path / "parity-demo"
    demo.mkdir()
    for name in ("masked_lstm", "sine_seq2seq", "seq_tagger"):
        trained, _, bundle = exported_zoo[name]
        shutil.copy(trained.path, demo / f"{name}.keras")
        shutil.copytree(bundle, demo / name)
    assert len(BLOCKS) == 3 and len(STREAM_EXPORT) == 1
    embedding, streaming, own_tests = BLOCKS
    exported = subprocess.run(
        [sys.executable, "-m", "parity", *STREAM_EXPORT[0].split()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    for block in (embedding, streaming):
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    test = own_tests + "\ntest_exported_model_matches_keras()\n"
    done = subprocess.run(
        [sys.executable, "-c", test], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
