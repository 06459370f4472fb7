"""``parity bench``: FLOP counting, timing, the report, and one small run end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity import runtime
from parity.bench.floor import Gemm, measure_floor
from parity.bench.iobinding import iobinding_generate
from parity.bench.render import to_dict
from parity.bench.result import BenchResult, Row, Settings
from parity.bench.timing import Timing, measure, measure_interleaved
from parity.cli.app import cli
from parity.runtime.errors import ParityError
from parity.runtime.sampling import sample_inputs
from tests import bundles


def _lstm_model(layer: str = "LSTM"):
    import keras

    x = keras.Input((None, 5), name="x")
    y = getattr(keras.layers, layer)(3)(x)
    return keras.Model(x, keras.layers.Dense(2)(y))


def test_lstm_flops_match_a_hand_count():
    from parity.bench.flops import count_flops, recurrent_gemms

    # LSTM(3) on 5 features, batch 2, 4 steps; per step the products are
    # 2 * batch * (in + units) * gates * units = 2 * 2 * 8 * 4 * 3 = 384, and
    # 13 elementwise operations per unit, 2 * 3 * 13 = 78. Dense(2): 2 * 2 * 3 * 2.
    assert count_flops(_lstm_model(), batch=2, time=4) == 4 * (384 + 78) + 24
    assert recurrent_gemms(_lstm_model(), batch=2) == [(2, 8, 12)]


def test_gru_and_time_distributed_conv_flops():
    import keras

    from parity.bench.flops import count_flops

    # GRU(3), reset_after: 2 * 1 * 8 * 3 * 3 = 144 per step, 3 * (11 + 3) elementwise.
    assert count_flops(_lstm_model("GRU"), batch=1, time=2) == 2 * (144 + 42) + 12
    frames = keras.Input((5, 8, 8, 1))
    conv = keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3))(frames)
    model = keras.Model(frames, conv)
    # each of 5 frames: a 6 x 6 x 4 output, each value a 3 x 3 x 1 window
    assert count_flops(model, batch=2) == 2 * 5 * 2 * (6 * 6 * 4) * 9


def test_a_dynamic_time_axis_needs_a_time():
    from parity.bench.flops import count_flops

    with pytest.raises(ParityError, match="time"):
        count_flops(_lstm_model(), batch=1)


def test_measure_calls_warmup_then_repeats():
    calls = []
    timing = measure(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5
    assert timing.repeats == 3
    assert timing.min <= timing.median <= timing.max
    for bad in ({"warmup": -1}, {"repeats": 0}):
        with pytest.raises(ParityError):
            measure(lambda: None, **bad)


def test_interleaved_timing_takes_turns_in_blocks_with_a_lead_in():
    calls = []
    ways = {name: (lambda n=name: calls.append(n)) for name in ("a", "b")}
    timings = measure_interleaved(ways, warmup=1, repeats=4, rounds=2, lead_in=0)
    # warm-up a, warm-up b, then per round: a's block (lead-in + 2), b's block
    assert "".join(calls) == "ab" + "aaabbb" * 2
    assert {name: t.repeats for name, t in timings.items()} == {"a": 4, "b": 4}
    with pytest.raises(ParityError):
        measure_interleaved(ways, repeats=0)


def test_the_lead_in_lasts_until_other_runtimes_threads_have_settled():
    """Timed on a clock that only the calls move (each takes one tick, a power
    of two so that the sums are exact), so that the count is the same whatever
    else the machine does."""
    tick = 2.0**-10
    now = [0.0]
    calls = []

    def way():
        calls.append(now[0])
        now[0] += tick

    timings = measure_interleaved(
        {"a": way}, warmup=0, repeats=2, rounds=1, lead_in=10 * tick, clock=lambda: now[0]
    )
    # the lead-in calls until 10 ticks have passed on that clock, then 2 timed calls
    assert len(calls) == 10 + 2
    assert timings["a"].median == timings["a"].max == tick


def test_floor_puts_the_square_first_and_each_size_once():
    floor = measure_floor([(4, 3, 2), (4, 3, 2), (1, 3, 2)], warmup=0, repeats=1)
    assert [(g.m, g.k, g.n) for g in floor][1:] == [(1, 3, 2), (4, 3, 2)]
    assert floor[0].m == floor[0].k == floor[0].n
    assert all(g.gflops > 0 for g in floor)


def test_iobinding_generation_equals_the_runtime_loop(tmp_path):
    manifest, _ = bundles.write_seq2seq(tmp_path / "toy")
    bundle = runtime.load_bundle(tmp_path / "toy", device="cpu")
    spec = manifest.graph(manifest.seq2seq.encoder_graph).inputs
    inputs = sample_inputs(spec, 3, time=5).inputs
    expected = runtime.generate(bundle, inputs, steps=7)
    np.testing.assert_array_equal(iobinding_generate(bundle, inputs, steps=7), expected)
    onehot, _ = bundles.write_seq2seq(tmp_path / "onehot", feedback="argmax_onehot")
    with pytest.raises(ParityError, match="feedback"):
        iobinding_generate(runtime.load_bundle(tmp_path / "onehot"), inputs, steps=2)


def test_report_derives_rates_against_the_peak():
    timing = Timing(0.5, 0.4, 0.6, 3)
    result = BenchResult(
        date="2026-01-01T00:00:00+00:00",
        machine={"cpu": "test"},
        settings=Settings(preset="tiny", repeats=3, warmup=0),
        floor=(Gemm(10, 10, 10, Timing(1e-6, 1e-6, 1e-6, 3)),),  # 2000 flops: 2 GFLOP/s
        rows=(
            Row("m", 4, "cpu", "onnxruntime", timing, flops=10**9),
            Row("m", None, "gpu", "onnxruntime", None, note="no CUDA device"),
            Row("m", 4, "cpu", "tf.function XLA", Timing(0.25, 0.2, 0.3, 3), flops=10**9),
            Row("m", 4, "cpu", "keras predict", Timing(2.0, 2.0, 2.0, 3), flops=10**9),
        ),
    )
    data = to_dict(result)
    timed, skipped, xla, predict = data["rows"]
    assert timed["vs_best_tensorflow"] == pytest.approx(2.0)  # against XLA, the fastest
    assert (xla["vs_best_tensorflow"], predict["vs_best_tensorflow"]) == (1.0, 8.0)
    assert skipped["vs_best_tensorflow"] is None
    assert timed["gflops"] == pytest.approx(2.0)
    assert timed["floor_s"] == pytest.approx(0.5)
    assert timed["floor_multiple"] == pytest.approx(1.0)
    assert skipped["skipped"] and skipped["median_s"] is None and skipped["note"]
    assert data["command"].startswith("parity bench --preset tiny")


def test_bench_smoke_on_the_tiny_preset(tmp_path):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", "--preset", "tiny", "--repeats", "1", "--warmup", "0"]
    args += ["--only", "conv_rows_lstm", "--only", "sine_seq2seq", "--batch", "1", "--batch", "3"]
    args += ["--json", str(out_json), "--plot", str(out_png)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 100, result.stdout
    groups, group = {}, None
    for line in result.stdout.splitlines():
        if line.endswith(", cpu") and not line.startswith(" "):
            group = groups.setdefault(line, [])
        elif group is not None and line.startswith("  "):
            group.append(line)
    for model, methods in (
        ("conv_rows_lstm", ("keras predict", "tf.function", "onnxruntime")),
        ("conv_rows_lstm", ("tf.function XLA", "litert")),
        ("sine_seq2seq", ("tf while_loop", "tf.function step, Python loop")),
        ("sine_seq2seq", ("tf while_loop XLA", "litert step, Python loop")),
        ("sine_seq2seq", ("onnxruntime step loop", "onnxruntime io-binding loop")),
    ):
        for method in methods:
            for batch in ("1", "3"):
                rows = groups[f"{model}, batch {batch}, cpu"]
                assert any(line.strip().startswith(method) for line in rows), (
                    model,
                    method,
                    batch,
                    result.output,
                )
    assert "floor: numpy float32 GEMM" in result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("... ")]
    assert progress[0].startswith("... 1/2 conv_rows_lstm: building, exporting, timing")
    assert any(line.startswith("... 2/2 sine_seq2seq: ") and "left" in line for line in progress)
    assert "absl" not in result.stderr and "XNNPACK" not in result.stderr

    report = json.loads(out_json.read_text())
    assert set(report) == {"schema", "date", "command", "settings", "machine", "floor", "rows"}
    assert report["schema"] == "parity-bench/2"
    assert {"cpu", "cores", "memory_gib", "versions", "gpu"} <= set(report["machine"])
    assert report["floor"]["peak_gflops"] > 0
    row_keys = {"model", "batch", "device", "method", "skipped", "note", "flops", "median_s"}
    row_keys |= {"min_s", "max_s", "repeats", "gflops", "floor_s", "floor_multiple"}
    row_keys |= {"vs_best_tensorflow"}
    for row in report["rows"]:
        assert set(row) == row_keys
        assert row["skipped"] == (row["median_s"] is None)
        assert row["skipped"] <= bool(row["note"])  # a skipped row says why
        assert "differs" not in row["note"]  # every way computes what ONNX Runtime computes
    timed = [row for row in report["rows"] if not row["skipped"]]
    assert {"litert", "litert step, Python loop"} <= {row["method"] for row in timed}
    assert all(row["flops"] > 0 and row["gflops"] > 0 for row in timed)
    assert {row["device"] for row in report["rows"]} == {"cpu", "gpu"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_refuses_bad_usage_with_one_line(tmp_path):
    for args in (
        ["--only", "no_such_model"],
        ["--preset", "tiny", "--json", str(tmp_path / "no" / "such" / "r.json")],
    ):
        result = CliRunner().invoke(cli, ["bench", *args])
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output


def test_a_way_that_cannot_run_is_a_row_that_says_why():
    from parity.bench.cases import _time_ways
    from parity.bench.litert import Unconvertible

    def unconvertible():
        raise Unconvertible("does not convert to LiteRT: no")

    def broken():
        raise RuntimeError("XLA compilation failed\nat line 3")

    ways = {
        "onnxruntime": lambda: np.ones(3),
        "litert": unconvertible,
        "tf.function XLA": broken,
        "tf.function": lambda: np.ones(3) + 1,
        "keras predict": "no GPU",
    }
    order = ("keras predict", "tf.function", "tf.function XLA", "litert", "onnxruntime")
    rows = _time_ways(ways, order, Settings(repeats=2, warmup=0), builders=("litert",))
    assert list(rows) == list(order)
    assert rows["onnxruntime"][0].repeats == 2 and rows["onnxruntime"][1] == ""
    assert rows["tf.function"][1] == "output differs from onnxruntime's by 1.0e+00"
    assert rows["tf.function XLA"] == (None, "failed: XLA compilation failed at line 3")
    assert rows["litert"] == (None, "does not convert to LiteRT: no")
    assert rows["keras predict"] == (None, "no GPU")


QUIET_LITERT = """
import sys
from parity.cli.native_logs import quiet_tensorflow
if sys.argv[1] == "quiet":
    quiet_tensorflow()
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

@tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
def double(x):
    return 2 * x

converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()])
interpreter = Interpreter(model_content=converter.convert())
interpreter.allocate_tensors()
interpreter.invoke()
print("ran", flush=True)
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_litert_and_absl_lines_only_with_verbose(mode):
    """LiteRT's XNNPACK line and absl's converter warning are hidden as
    TensorFlow's start-up lines are, and shown where --verbose asks."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", QUIET_LITERT, mode],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout == "ran\n", done.stderr
    for line in ("Created TensorFlow Lite XNNPACK delegate", "WARNING:absl:Please consider"):
        assert (line in done.stderr) == (mode == "verbose"), done.stderr
    if mode == "quiet":
        assert "absl" not in done.stderr, done.stderr


def test_the_table_fits_100_columns_and_the_plot_tells_every_method_apart(tmp_path):
    from parity.bench.render import METHODS, plot, table
    from parity.verify.plot import COLOURS, MARKERS

    assert len({COLOURS[i % len(COLOURS)] for i in range(len(METHODS))}) == len(METHODS)
    assert len({MARKERS[i % len(MARKERS)] for i in range(len(METHODS))}) == len(METHODS)
    rows = tuple(
        Row("a_long_model_name", batch, "cpu", method, Timing(2e-3, 1e-3, 9e-3, 5), 10**6,
            "batch 470 reduced to 256 to fit in memory; " * 3 if method == METHODS[0] else "")
        for batch in (1, 470)
        for method in METHODS
    )  # fmt: skip
    result = BenchResult(
        date="2026-01-01T00:00:00+00:00",
        machine={"cpu": "test", "versions": {f"package{i}": "1.2.3" for i in range(12)}},
        settings=Settings(preset="seed", repeats=5, warmup=2),
        floor=(Gemm(10, 10, 10, Timing(1e-6, 1e-6, 1e-6, 3)),),
        rows=(*rows, Row("a_long_model_name", None, "gpu", "onnxruntime", None, note="no GPU")),
    )
    text = table(result)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert all(method in text for method in METHODS)
    assert "onnxruntime: skipped: no GPU" in text
    plot(result, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stream_rows_time_one_step_of_a_stateful_model(tmp_path):
    from parity.bench.stream import METHODS, stream_case

    settings = Settings(preset="tiny", batches=(1, 3), repeats=1, warmup=0)
    case = stream_case(settings, tmp_path, ["seq_tagger"])
    rows = {(row.batch, row.method): row for row in case.rows}
    assert set(rows) == {(batch, method) for batch in (1, 3) for method in METHODS}
    for row in rows.values():
        assert row.model == "seq_tagger stream" and row.timing is not None, row.note
        assert "differs" not in row.note and "steps/s" in row.note  # all compute the same
        assert row.flops > 0
