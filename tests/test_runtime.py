"""runtime: loading bundles, checking inputs, providers, generation; and that
none of it imports TensorFlow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from parity import runtime
from parity.cli.app import cli
from parity.runtime.bundle_format.manifest import TensorSpec
from parity.runtime.errors import BundleError, InputError, ParityError
from parity.runtime.inputs import check_array
from parity.runtime.providers import cuda_usable
from parity.runtime.sampling import sample_inputs
from tests import bundles


@pytest.fixture
def toy(tmp_path):
    _, weights = bundles.write_seq2seq(tmp_path / "toy")
    return tmp_path / "toy", weights


def test_run_named_inputs_to_named_outputs(single):
    bundle = runtime.load_bundle(single, device="cpu")
    x = np.ones((2, 5, 3), np.float32)
    out = bundle.run({"x": x, "ids": np.zeros((2, 5), np.int64)})
    assert set(out) == {"y", "z"}
    np.testing.assert_array_equal(out["y"], 2 * x)
    assert bundle.providers == {"model": ("CPUExecutionProvider",)}
    assert bundle.device == "cpu"


def test_float64_and_int32_are_converted_within_their_kind(single):
    bundle = runtime.load_bundle(single, device="cpu")
    out = bundle.run({"x": np.ones((1, 2, 3)), "ids": np.ones((1, 2), np.int32)})
    assert out["y"].dtype == np.float32 and out["z"].dtype == np.int64


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.ones((1, 2, 3), np.float32)}, "input 'ids' is missing"),
        ({"x": np.ones((1, 2, 3)), "ids": np.ones((1, 2)), "w": 1}, "'w' is not an input"),
        ({"x": np.ones((1, 2, 3)), "ids": np.ones((1, 2))}, "'ids': dtype float64"),
        ({"x": np.ones((1, 2)), "ids": np.ones((1, 2), int)}, "'x': rank 2"),
        ({"x": np.ones((1, 2, 4)), "ids": np.ones((1, 2), int)}, "'x': axis 2 has size 4"),
        ({"x": np.ones((0, 2, 3)), "ids": np.ones((0, 2), int)}, "'x': batch is 0"),
        ({"x": np.ones((1, 0, 3)), "ids": np.ones((1, 0), int)}, "'x': time is 0"),
        ({"x": np.full((1, 2, 3), np.nan), "ids": np.ones((1, 2), int)}, "NaN or Inf"),
        ({"x": np.ones((1, 2, 3)), "ids": np.ones((2, 2), int)}, "'ids': axis 0 (batch) is 2"),
        ({"x": np.ones((1, 2, 3)), "ids": np.ones((1, 3), int)}, "axis 1 (time) is 3"),
    ],
)
def test_bad_inputs_say_which_input_and_how(single, feeds, message):
    bundle = runtime.load_bundle(single, device="cpu")
    with pytest.raises(InputError) as caught:
        bundle.run(feeds)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _corrupt(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.onnx").unlink(), "'model.onnx' is missing"),
        (lambda p: (p / "model.onnx").write_bytes(b"\x00garbage"), "sha256 does not match"),
        (lambda p: (p / "manifest.json").unlink(), "no manifest.json"),
        (lambda p: (p / "manifest.json").write_text("{"), "unreadable manifest"),
        (
            lambda p: _corrupt(p, lambda m: m.update(format_version=99)),
            "format version 99 is not supported",
        ),
        (
            lambda p: _corrupt(p, lambda m: m["graphs"]["model"].update(file="../model.onnx")),
            "outside the bundle",
        ),
        (
            lambda p: _corrupt(p, lambda m: m["graphs"]["model"].update(file="/etc/passwd")),
            "outside the bundle",
        ),
        (lambda p: _corrupt(p, lambda m: m.pop("graphs")), "missing field 'graphs'"),
    ],
)
def test_damaged_bundles_are_refused_with_one_line(single, damage, message):
    damage(single)
    with pytest.raises(BundleError) as caught:
        runtime.load_bundle(single, device="cpu")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_graph_onnx_runtime_cannot_load(single):
    from parity.runtime.bundle_format.digest import sha256_file

    (single / "model.onnx").write_bytes(np.random.default_rng(0).bytes(300))
    digest = sha256_file(single / "model.onnx")
    _corrupt(single, lambda m: m["graphs"]["model"].update(sha256=digest))
    with pytest.raises(BundleError, match="ONNX Runtime cannot load this graph"):
        runtime.load_bundle(single, device="cpu")


def test_not_a_folder(tmp_path):
    with pytest.raises(BundleError, match="not a bundle folder"):
        runtime.load_bundle(tmp_path / "nothing")


def test_device_choice(single):
    assert runtime.load_bundle(single, device="auto").device == ("gpu" if cuda_usable() else "cpu")
    with pytest.raises(ParityError, match="device must be one of"):
        runtime.load_bundle(single, device="tpu")
    if not cuda_usable():
        with pytest.raises(ParityError, match="--device gpu: ONNX Runtime cannot run on a GPU"):
            runtime.load_bundle(single, device="gpu")


def test_sessions_spin_briefly(single):
    """Idle intra-op workers spin for SPIN_DURATION_US, not ONNX Runtime's
    long default, which costs 2x when another process shares the CPU."""
    from parity.runtime.providers import SPIN_DURATION_US

    options = runtime.load_bundle(single, device="cpu").session().get_session_options()
    entry = options.get_session_config_entry("session.intra_op.spin_duration_us")
    assert entry == str(SPIN_DURATION_US)


def test_one_row_threads_follow_the_graph(exported_zoo, tmp_path):
    """One row of a recurrent graph runs on a one-thread session (waking a
    second thread costs more than it saves, at every step); a graph with a
    large convolution keeps its threads, which split the convolution."""
    import keras

    from parity.exporter import export_model
    from parity.runtime.providers import ONE_ROW_SPLIT_MACS, SINGLE_ROW_THREADS

    for name in ("masked_lstm", "conv_rows_lstm"):
        bundle = runtime.load_bundle(exported_zoo[name][2], device="cpu")
        one_row = bundle.session(batch=1)
        assert one_row is not bundle.session()
        assert one_row.get_session_options().intra_op_num_threads == SINGLE_ROW_THREADS
    images = keras.Input((128, 128, 3), name="images")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(64, 3)(images))
    model = keras.Model(images, keras.layers.Dense(2, name="scores")(features))
    assert ONE_ROW_SPLIT_MACS <= 126 * 126 * 64 * 3 * 3 * 3
    export_model(model, tmp_path / "conv")
    bundle = runtime.load_bundle(tmp_path / "conv", device="cpu")
    assert bundle.session(batch=1) is bundle.session()


def test_cuda_is_not_trusted_from_the_available_list():
    import onnxruntime as ort

    # onnxruntime-gpu lists CUDA even where no session can use it.
    if "CUDAExecutionProvider" in ort.get_available_providers() and not cuda_usable():
        assert runtime.providers.requested_providers("auto") == ["CPUExecutionProvider"]


def test_generation_equals_numpy_reference(toy):
    path, weights = toy
    bundle = runtime.load_bundle(path, device="cpu")
    x = np.random.default_rng(1).normal(size=(4, 9, bundles.FEATURES)).astype(np.float32)
    start = runtime.start_input(bundle.manifest, {"encoder_input": x})
    np.testing.assert_array_equal(start, x[:, -1:])
    result = runtime.generate(bundle, {"encoder_input": x}, steps=5)
    expected = bundles.numpy_generate(weights, x, x[:, -1:], 5)
    assert result.shape == (4, 5, bundles.FEATURES)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    # the default horizon is the manifest's, and an array works for a single input
    assert runtime.generate(bundle, x).shape[1] == bundle.manifest.seq2seq.steps


def test_onehot_feedback_and_stop_token(tmp_path):
    _, weights = bundles.write_seq2seq(tmp_path / "tokens", feedback="argmax_onehot")
    bundle = runtime.load_bundle(tmp_path / "tokens", device="cpu")
    x = np.random.default_rng(2).normal(size=(3, 4, bundles.FEATURES)).astype(np.float32)
    start = runtime.start_input(bundle.manifest, {"encoder_input": x})
    np.testing.assert_array_equal(start[:, 0, 1], 1)
    result = runtime.generate(bundle, x, steps=6)
    np.testing.assert_allclose(
        result, bundles.numpy_generate(weights, x, start, 6, "argmax_onehot"), rtol=1e-5, atol=1e-6
    )
    token = int(result[0, 0].argmax())
    stopped = runtime.generate(bundle, x, steps=6, stop_token=token)
    rows = stopped[:, :, :].argmax(-1)
    for row in range(3):
        hits = np.flatnonzero(rows[row] == token)
        if hits.size:  # once emitted, the row repeats that output
            assert (stopped[row, hits[0] :] == stopped[row, hits[0]]).all()
    # generation ends at the first step where every row has emitted the token
    first_hits = [np.flatnonzero(rows[row] == token) for row in range(3)]
    if all(hits.size for hits in first_hits):
        assert stopped.shape[1] == max(hits[0] for hits in first_hits) + 1
    else:
        assert stopped.shape[1] == 6


@pytest.mark.parametrize("steps", [0, -3, runtime.MAX_STEPS + 1])
def test_generation_refuses_bad_horizons(toy, steps):
    bundle = runtime.load_bundle(toy[0], device="cpu")
    with pytest.raises(ParityError, match="steps"):
        runtime.generate(bundle, np.ones((1, 3, 2), np.float32), steps=steps)


def test_generation_needs_a_seq2seq_bundle(single):
    with pytest.raises(ParityError, match="not a seq2seq bundle"):
        runtime.generate(runtime.load_bundle(single, device="cpu"), np.ones((1, 2, 3)))


def test_generate_cli(toy, tmp_path):
    path, weights = toy
    x = np.random.default_rng(3).normal(size=(2, 5, bundles.FEATURES)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npy"
    args = ["generate", str(path), "--input", str(tmp_path / "x.npy"), "--steps", "4"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        np.load(out), bundles.numpy_generate(weights, x, x[:, -1:], 4), rtol=1e-5, atol=1e-6
    )
    for bad, message in (
        (["--steps", "0"], "steps: must be at least 1"),
        (["--steps", str(runtime.MAX_STEPS + 1)], "beyond the limit"),
        (["--input", str(tmp_path / "missing.npy")], "no such file"),
    ):
        result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "bad.npy"), *bad])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "bad.npy").exists()


def test_runtime_never_imports_tensorflow(single, toy):
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from parity import runtime
        from parity.runtime.bundle_format.golden import read_golden
        bundle = runtime.load_bundle({str(single)!r})
        golden = read_golden(bundle)
        out = bundle.run({{"x": golden["model/inputs/x"], "ids": golden["model/inputs/ids"]}})
        assert np.array_equal(out["y"], golden["model/outputs/y"])
        toy = runtime.load_bundle({str(toy[0])!r})
        runtime.generate(toy, np.ones((2, 3, 2), np.float32), steps=3)
        heavy = ("tensorflow", "keras", "tf2onnx")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print(loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    dtype=st.sampled_from(["float32", "float64", "int32", "int64", "bool"]),
)
def test_input_check_accepts_exactly_what_fits(shape, dtype):
    spec = TensorSpec("x", "float32", ("batch", "time", 3))
    value = np.zeros(shape, dtype)
    fits = len(shape) == 3 and shape[2] == 3 and 0 not in shape and dtype.startswith("float")
    if fits:
        assert check_array(spec, value).dtype == np.float32
    else:
        with pytest.raises(InputError, match="input 'x'"):
            check_array(spec, value)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 6), time=st.integers(1, 9), seed=st.integers(0, 1000))
def test_sampled_masked_inputs_pad_exactly_past_each_length(batch, time, seed):
    from parity.runtime.bundle_format.manifest import MaskSpec

    spec = TensorSpec("x", "float32", ("batch", "time", 2))
    for padding in ("post", "pre"):
        mask = MaskSpec("x", 0.0, padding=padding)
        sample = sample_inputs([spec], batch, time=time, seed=seed, mask=mask)
        x, lengths = sample.inputs["x"], sample.lengths
        assert x.shape == (batch, time, 2)
        assert lengths[0] == time and (batch == 1 or lengths[-1] == 1)
        valid = (x != 0).any(axis=-1)
        assert (valid.sum(axis=1) == lengths).all()
        for row, length in enumerate(lengths):
            steps = np.arange(time) if padding == "post" else np.arange(time)[::-1]
            assert valid[row, steps[:length]].all()
