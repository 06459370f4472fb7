"""Exporting the zoo: bundles that load without TensorFlow and compute what Keras computes."""

import json
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from parity import models, runtime
from parity.cli.app import cli
from parity.exporter import export_keras, export_model
from parity.exporter.keras_io import keras_outputs
from parity.runtime.bundle_format.digest import sha256_file
from parity.runtime.errors import ParityError
from parity.runtime.sampling import sample_inputs

SINGLE = [name for name in models.names() if name != "sine_seq2seq"]


@pytest.fixture
def exported(exported_zoo):
    return exported_zoo


@pytest.mark.parametrize("name", models.names())
def test_manifest_describes_the_bundle(exported, name):
    trained, manifest, path = exported[name]
    data = json.loads((path / "manifest.json").read_text())
    assert data["format"] == "parity-bundle" and data["format_version"] == 1
    assert data["source"]["sha256"] == sha256_file(trained.path)
    assert data["opset"] == 17
    for tool in ("tensorflow", "keras", "tf2onnx", "onnx", "numpy"):
        assert tool in data["versions"]
    assert "onnxruntime" in data["versions"] or "onnxruntime-gpu" in data["versions"]
    for graph in manifest.graphs.values():
        assert sha256_file(path / graph.file) == graph.sha256
        proto = onnx.load(path / graph.file)
        onnx.checker.check_model(proto, full_check=True)
        for spec in graph.inputs:
            assert spec.shape[:1] in (("batch",), ())  # the loop graph's step count is a scalar
        onnx_inputs = {v.name: v for v in proto.graph.input}
        for spec in graph.inputs:
            dims = onnx_inputs[spec.name].type.tensor_type.shape.dim
            assert [d.dim_param or d.dim_value for d in dims] == list(spec.shape)
    assert manifest.golden is not None
    assert (manifest.kind == "seq2seq") == (name == "sine_seq2seq")
    assert (manifest.mask is not None) == (name == "masked_lstm")


def test_dynamic_axes_stay_dynamic(exported):
    tagger = exported["seq_tagger"][1].graph("model")
    assert tagger.inputs[0].shape[:2] == ("batch", "time")
    assert tagger.outputs[0].shape[:2] == ("batch", "time")
    masked = exported["masked_lstm"][1]
    assert masked.mask.input == "sequence" and masked.mask.value == 0.0
    assert masked.graph("model").inputs[0].shape[0] == "batch"


def test_written_graphs_are_simplified(exported):
    """tf2onnx puts a Reshape pair and two Transposes between a TimeDistributed
    Conv2D and MaxPooling2D, which keeps ONNX Runtime from running them in its
    blocked layout (twice the time); simplified, the pool reads the
    convolution's activation directly; where only the batch axis is dynamic,
    no target shape is computed from ``Shape`` at run time."""
    graph = onnx.load(exported["td_cnn_lstm"][2] / "model.onnx").graph
    producer = {out: node for node in graph.node for out in node.output}
    (pool,) = [node for node in graph.node if node.op_type == "MaxPool"]
    relu = producer[pool.input[0]]
    assert (relu.op_type, producer[relu.input[0]].op_type) == ("Relu", "Conv")
    for name in ("td_cnn_lstm", "conv_rows_lstm"):
        ops = {node.op_type for node in onnx.load(exported[name][2] / "model.onnx").graph.node}
        assert "Shape" not in ops, name


def test_a_graph_the_simplifier_cannot_take_is_kept_with_a_note():
    from onnx import TensorProto, helper

    from parity.exporter.convert import ConvertedGraph, simplified_graph

    x, y = (helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4]) for name in "xy")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "undefined"], ["y"])], "broken", [x], [y]
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    kept, note = simplified_graph(ConvertedGraph(proto, (), ()))
    assert kept.proto is proto
    assert note.startswith("the graph is left as tf2onnx wrote it: onnx-simplifier")


@pytest.mark.parametrize("name", SINGLE)
def test_onnx_runtime_matches_keras_on_fresh_inputs(exported, name):
    trained, manifest, path = exported[name]
    bundle = runtime.load_bundle(path, device="cpu")
    graph = manifest.graph("model")
    for batch, time_steps in ((1, 9), (5, 3)):
        sample = sample_inputs(graph.inputs, batch, time=time_steps, seed=42, mask=manifest.mask)
        expected = keras_outputs(trained.model, sample.inputs)
        actual = bundle.run(sample.inputs)
        for spec in graph.outputs:
            np.testing.assert_allclose(actual[spec.name], expected[spec.name], atol=1e-5, rtol=1e-4)


def test_every_bundle_loads_and_passes_golden_data_without_tensorflow(exported, tmp_path):
    script = (
        "import sys\n"
        "from parity.verify import VerifyOptions, check\n"
        f"for path in {[str(path) for _, _, path in exported.values()]!r}:\n"
        "    report = check(path, options=VerifyOptions(device='cpu'))\n"
        "    assert report.passed, report.table()\n"
        "heavy = ('tensorflow', 'keras', 'tf2onnx')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _cli(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_cli_exports_and_summarises(trained_zoo, tmp_path):
    result = _cli(trained_zoo["seq_tagger"].path, tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "in  tokens: float32 (batch, time," in result.output
    assert runtime.load_bundle(tmp_path / "b", device="cpu").manifest.name


def test_cli_bad_input(trained_zoo, tmp_path):
    src = trained_zoo["seq_tagger"].path
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    (tmp_path / "empty.keras").write_bytes(b"")
    truncated = src.read_bytes()[: src.stat().st_size // 2]
    (tmp_path / "truncated.keras").write_bytes(truncated)
    cases = {
        "no such file": [tmp_path / "missing.keras", tmp_path / "o1"],
        "is a folder": [tmp_path, tmp_path / "o2"],
        "not a Keras 3 model file": [tmp_path / "junk.keras", tmp_path / "o3"],
        "opset 13 is not supported": [src, tmp_path / "o4", "--opset", "13"],
        "seq2seq models only": [src, tmp_path / "o5", "--steps", "4"],
        "cannot write here": [src, tmp_path / "junk.keras" / "o7"],
    }
    for message, args in cases.items():
        assert message in _one_error_line(_cli(*args))
        assert not (tmp_path / args[1].name).exists() or args[1] == tmp_path
    for bad in ("empty.keras", "truncated.keras"):
        _one_error_line(_cli(tmp_path / bad, tmp_path / "o6"))
    assert not (tmp_path / "o6").exists()


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["seq_tagger", "sine_seq2seq"])
def test_export_into_a_folder_that_is_not_a_bundle_is_refused(trained_zoo, tmp_path, name):
    """A user's folder is never replaced, nor the folder the model lives in."""
    mydata = tmp_path / "mydata"
    (mydata / "runs").mkdir(parents=True)
    (mydata / "notes.txt").write_text("a week of results\n")
    (mydata / "runs" / "loss.csv").write_text("0.1\n")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    shutil.copy(trained_zoo[name].path, sandbox / "m.keras")
    for src, out in ((trained_zoo[name].path, mydata), (sandbox / "m.keras", sandbox)):
        before = _files(out)
        line = _one_error_line(_cli(src, out))
        assert "not a parity bundle" in line and "left untouched" in line
        assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata", "sandbox"]


def test_export_into_the_bundle_holding_the_model_is_refused(exported, tmp_path):
    trained, _, _ = exported["seq_tagger"]
    bundle = tmp_path / "b"
    assert _cli(trained.path, bundle).exit_code == 0
    shutil.copy(trained.path, bundle / "m.keras")
    before = _files(bundle)
    line = _one_error_line(_cli(bundle / "m.keras", bundle))
    assert "holds the source model m.keras" in line and "left untouched" in line
    assert _files(bundle) == before


def test_seq2seq_required_but_not_found(trained_zoo, tmp_path):
    line = _one_error_line(_cli(trained_zoo["masked_lstm"].path, tmp_path / "o", "--seq2seq"))
    assert "expected" in line
    a, b = keras.Input((3, 2), name="a"), keras.Input((3, 2), name="b")
    dense = keras.Model([a, b], keras.layers.Dense(1, name="out")(keras.layers.Add()([a, b])))
    dense.save(tmp_path / "dense.keras")
    line = _one_error_line(_cli(tmp_path / "dense.keras", tmp_path / "o", "--seq2seq"))
    assert "expected" in line
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    x = keras.Input((4, 2), name="x")
    y = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    model = keras.Model(x, keras.layers.LSTM(3, name="out")(y))
    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    model.save(path)
    return path


def test_lambda_needs_unsafe(lambda_model, tmp_path):
    line = _one_error_line(_cli(lambda_model, tmp_path / "b"))
    assert "--unsafe" in line
    assert not (tmp_path / "b").exists()
    result = _cli(lambda_model, tmp_path / "b", "--unsafe")
    assert result.exit_code == 0, result.output


def _tree(path):
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_failed_export_leaves_the_old_bundle_whole(exported, tmp_path, monkeypatch):
    import parity.exporter.export as export_module

    _, _, good = exported["seq_tagger"]
    target = tmp_path / "bundle"
    export_keras(exported["seq_tagger"][0].path, target)
    before = _tree(target)

    def broken(*args, **kwargs):
        raise ParityError("conversion failed on purpose")

    monkeypatch.setattr(export_module, "keras_to_onnx", broken)
    with pytest.raises(ParityError):
        export_keras(exported["seq_tagger"][0].path, target)
    assert _tree(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def _content(path):
    """A graph's ops and weights (tf2onnx's node names and order vary between traces)."""
    proto = onnx.load(path)
    weights = {
        init.name: onnx.numpy_helper.to_array(init).tobytes() for init in proto.graph.initializer
    }
    return sorted(node.op_type for node in proto.graph.node), sorted(weights.values())


def test_reexport_is_idempotent(exported, tmp_path):
    src = exported["masked_lstm"][0].path
    first = export_keras(src, tmp_path / "b")
    graph = _content(tmp_path / "b" / "model.onnx")
    second = export_keras(src, tmp_path / "b")
    assert _content(tmp_path / "b" / "model.onnx") == graph
    assert first.golden == second.golden
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_export_of_an_in_memory_model(trained_zoo, tmp_path):
    manifest = export_model(trained_zoo["conv_rows_lstm"].model, tmp_path / "b")
    assert manifest.source["name"] == trained_zoo["conv_rows_lstm"].model.name
    with pytest.raises(ParityError, match="a seq2seq bundle keeps its batch axis dynamic"):
        export_model(trained_zoo["sine_seq2seq"].model, tmp_path / "c", dynamic_batch=False)


@pytest.mark.parametrize("delay", [4.0, 9.0])
def test_killed_export_leaves_old_or_new_bundle(exported, tmp_path, delay):
    """Kill ``parity export`` part-way: the folder holds a whole bundle, old or new."""
    trained, _, _ = exported["conv_rows_lstm"]
    target = tmp_path / "bundle"
    export_keras(exported["seq_tagger"][0].path, target)
    old = _tree(target)
    process = subprocess.Popen(
        [sys.executable, "-m", "parity", "export", str(trained.path), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    bundle = runtime.load_bundle(target, device="cpu")  # whole: hashes match
    assert _tree(target) == old or bundle.manifest.source["sha256"] == sha256_file(trained.path)
