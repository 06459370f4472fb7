"""Long-lived processes: memory stays flat over many runs, threads share a bundle."""

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from parity import runtime
from parity.runtime.sampling import sample_inputs

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads resident memory from /proc"
)


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _growth(work, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        work()
    before = _resident_mb()
    for _ in range(repeats):
        work()
    return _resident_mb() - before


def test_memory_stays_flat_over_10000_runs(exported_zoo):
    _, manifest, path = exported_zoo["masked_lstm"]
    bundle = runtime.load_bundle(path, device="cpu")
    feeds = sample_inputs(manifest.graph("model").inputs, 2, seed=0, mask=manifest.mask).inputs
    growth = _growth(lambda: bundle.run(feeds), warmup=500, repeats=10_000)
    assert growth < 20, f"resident memory grew by {growth:.1f} MB over 10,000 runs"


def test_memory_stays_flat_over_1000_generations(exported_zoo):
    _, manifest, path = exported_zoo["sine_seq2seq"]
    bundle = runtime.load_bundle(path, device="cpu")
    encoder = manifest.graph("encoder")
    feeds = sample_inputs(encoder.inputs, 2, time=12, seed=0).inputs
    growth = _growth(lambda: runtime.generate(bundle, feeds, steps=10), warmup=100, repeats=1000)
    assert growth < 20, f"resident memory grew by {growth:.1f} MB over 1,000 generations"


def test_two_threads_share_one_bundle(exported_zoo):
    _, manifest, path = exported_zoo["seq_tagger"]
    bundle = runtime.load_bundle(path, device="cpu")
    graph = manifest.graph("model")
    batches = [sample_inputs(graph.inputs, 3, time=5 + i, seed=i).inputs for i in range(8)]
    expected = [bundle.run(feeds) for feeds in batches]
    results: dict[int, list] = {0: [], 1: []}
    errors = []

    def worker(index: int) -> None:
        try:
            for _ in range(25):
                results[index].append([bundle.run(feeds) for feeds in batches])
        except Exception:  # reported below with its traceback
            errors.append(sys.exc_info())

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for runs in results.values():
        for run in runs:
            for got, want in zip(run, expected, strict=True):
                np.testing.assert_array_equal(got["tags"], want["tags"])
