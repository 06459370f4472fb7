"""parity's runtime and golden verification on a GPU machine without TensorFlow.

The bundles are made where TensorFlow is (their golden data holds its
outputs); this script runs where ONNX Runtime's CUDA provider is, with
ONNX Runtime alone. For each bundle of FOLDER (``parity demo``'s
``parity-demo``) and each stream bundle of STREAMS: ``parity verify BUNDLE``
on the GPU in float32 and with ``--tf32``, and on the CPU; every graph run
on both devices at batch 1 and 64 (largest difference, median call time);
streams fed in chunks and seq2seq generation on both devices; with
``--generation=BUNDLE`` (a seq2seq bundle, BENCHMARKS.md's seed
``sine_seq2seq``), its 150-step generation timed at batch 1 and 470 on both
devices: the loop graph, the step loop, the step loop with IO binding.
Usage::

    python -m tests.device_check FOLDER [STREAMS] [--device=gpu|cpu] [--generation=BUNDLE]

(``--device=cpu`` runs the same on a machine without a GPU.) Exit status 0
when every verify passed, else 1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from parity import runtime
from parity.runtime import providers
from parity.runtime.generate import LOOP_STEPS
from parity.runtime.sampling import sample_inputs


def _verify(bundle: Path, *flags: str) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-m", "parity", "verify", str(bundle), *flags],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = (done.stdout + done.stderr).splitlines()
    said = [line.strip() for line in lines
            if line.strip().startswith(("PASSED", "FAILED", "error", "note"))]  # fmt: skip
    return done.returncode, said


def _median_us(bundle, feeds, graph: str) -> float:
    bundle.run(feeds, graph=graph)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        bundle.run(feeds, graph=graph)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main(folder: Path, streams: Path | None, device: str) -> int:
    ort = providers.onnxruntime()
    print("onnxruntime", ort.__version__, "cuda usable:", providers.cuda_usable())
    assert "tensorflow" not in sys.modules
    failed = 0
    bundles = sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file())
    for bundle in bundles:
        for flags in ([device], [device, "--tf32"], ["cpu"]):
            rc, said = _verify(bundle, "--device", *flags)
            failed += rc != 0
            print(f"verify {bundle.name} --device {' '.join(flags)}: exit {rc}")
            print("    " + "\n    ".join(said))
    for path in bundles:
        on, cpu = runtime.load_bundle(path, device=device), runtime.load_bundle(path, device="cpu")
        for graph, spec in on.manifest.graphs.items():
            for batch in (1, 64):
                feeds = sample_inputs(spec.inputs, batch, time=12).inputs
                if LOOP_STEPS in feeds:  # a loop graph: the horizon, not a random count
                    feeds[LOOP_STEPS] = np.array(10, np.int64)
                a, b = on.run(feeds, graph=graph), cpu.run(feeds, graph=graph)
                diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
                print(f"{path.name} {graph} batch {batch}: max |{device}-cpu| {diff:.2e}; median "
                      f"call {_median_us(on, feeds, graph):.0f} us on {device}, "
                      f"{_median_us(cpu, feeds, graph):.0f} us on cpu")  # fmt: skip
        if on.manifest.seq2seq is not None:
            spec = on.manifest.graphs[on.manifest.seq2seq.encoder_graph]
            x = sample_inputs(spec.inputs, 3, time=12, seed=2).inputs
            for loop in (True, False):
                a = runtime.generate(on, x, steps=10, use_loop_graph=loop)
                b = runtime.generate(cpu, x, steps=10, use_loop_graph=loop)
                print(f"{path.name} generation (loop graph: {loop}): max |{device}-cpu| "
                      f"{float(np.max(np.abs(a - b))):.2e}")  # fmt: skip
    for path in sorted(streams.iterdir()) if streams else []:
        rc, said = _verify(path, "--device", device)
        failed += rc != 0
        print(f"verify {path.name} (stream) --device {device}: exit {rc}: {' '.join(said)}")
        outputs = []
        for where in (device, "cpu"):
            stream = runtime.open_stream(path, batch=4, device=where)
            streaming = stream.bundle.manifest.streaming
            sequences = [t for t in stream.bundle.manifest.graphs[streaming.graph].inputs
                         if t.name in streaming.inputs]  # fmt: skip
            x = sample_inputs(sequences, 4, time=12, seed=1).inputs
            pieces = [stream.feed({k: v[:, a:b] for k, v in x.items()})
                      for a, b in ((0, 1), (1, 5), (5, 12))]  # fmt: skip
            outputs.append({k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]})
        diff = max(float(np.max(np.abs(outputs[0][k] - outputs[1][k]))) for k in outputs[0])
        print(f"stream {path.name}, chunks of 1, 4 and 7 steps: max |{device}-cpu| {diff:.2e}")
    return 1 if failed else 0


def time_generation(path: Path, device: str, steps: int = 150) -> None:
    """The median of 20 calls (after two) of each way to generate, per device and batch."""
    from parity.bench.iobinding import iobinding_generate

    for where in (device, "cpu"):
        bundle = runtime.load_bundle(path, device=where)
        spec = bundle.manifest.graphs[bundle.manifest.seq2seq.encoder_graph]
        for batch in (1, 470):
            x = sample_inputs(spec.inputs, batch, time=150).inputs
            ways = {
                "loop graph": partial(runtime.generate, bundle, x, steps=steps),
                "step loop": partial(
                    runtime.generate, bundle, x, steps=steps, use_loop_graph=False
                ),
                "step loop, IO binding": partial(iobinding_generate, bundle, x, steps=steps),
            }
            first = None
            for name, call in ways.items():
                out = call()
                call()
                first = out if first is None else first
                times = []
                for _ in range(20):
                    start = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - start)
                diff = float(np.max(np.abs(out - first)))
                print(f"{where} batch {batch} {name}: median {np.median(times) * 1e3:.2f} ms, "
                      f"max |diff| to the loop graph {diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    named = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    chosen = named.get("device", "gpu")
    status = main(Path(args[0]), Path(args[1]) if len(args) > 1 else None, chosen)
    if "generation" in named:
        time_generation(Path(named["generation"]), chosen)
    sys.exit(status)
