"""Loading models in every form parity reads (legacy HDF5 files and SavedModel
folders: what they are refused for, before Keras or TensorFlow runs them), and
long-lived processes: memory stays flat over many runs, threads share a bundle."""

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from parity import runtime
from parity.exporter.load import load_keras
from parity.runtime.errors import ParityError
from parity.runtime.sampling import sample_inputs

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads resident memory from /proc"
)


def _h5_model(
    path: Path, units: int, *, dataset_shape: tuple[int, ...] = (1,), more: tuple = ()
) -> Path:
    """An HDF5 file as Keras' legacy ``model.save`` writes one: a
    ``model_config`` attribute naming one LSTM of ``units`` (then the layer
    configs ``more``), and one array declared as ``dataset_shape`` (never
    written: HDF5 stores no data for it)."""
    import h5py

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5, 8]}},
                {"class_name": "LSTM", "config": {"name": "lstm", "units": units}},
                *more,
            ],
        },
    }
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        weights = h5.create_group("model_weights")
        weights.create_dataset("kernel", shape=dataset_shape, dtype="float32", chunks=True)
    return path


def test_h5_declaring_a_huge_lstm_is_refused_before_keras(tmp_path):
    path = _h5_model(tmp_path / "huge.h5", 20000)
    assert path.stat().st_size < 20_000
    with pytest.raises(ParityError, match="LSTM 'lstm' alone .* beyond the limit of 4.0 GiB"):
        load_keras(path)


def test_h5_whose_arrays_inflate_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PARITY_MAX_MODEL_BYTES", str(2**20))
    path = _h5_model(tmp_path / "bomb.h5", 4, dataset_shape=(3 * 2**18,))
    assert path.stat().st_size < 100_000
    with pytest.raises(ParityError, match="arrays take 3.0 MiB uncompressed, beyond 2 x"):
        load_keras(path)


def test_a_lambda_in_an_h5_file_is_refused_before_keras_reads_it(tmp_path):
    """Keras would stop at the unknown layer first and never see the Lambda."""
    unknown = {"class_name": "Mystery", "module": "nowhere", "config": {"name": "mystery"}}
    lambda_ = {"class_name": "Lambda", "config": {"name": "shift", "function": "x"}}
    path = _h5_model(tmp_path / "m.h5", 4, more=(unknown, lambda_))
    with pytest.raises(ParityError, match="Lambda layer 'shift' runs Python code.*--unsafe"):
        load_keras(path)
    with pytest.raises(ParityError, match="cannot load Keras model"):
        load_keras(path, unsafe=True)


def test_h5_without_a_model_or_with_another_suffix_is_refused(tmp_path):
    import h5py

    with h5py.File(tmp_path / "weights.h5", "w") as h5:
        h5.create_dataset("kernel", data=np.zeros(3))
    with pytest.raises(ParityError, match="without a model_config"):
        load_keras(tmp_path / "weights.h5")
    renamed = _h5_model(tmp_path / "model.bin", 4)
    with pytest.raises(ParityError, match="must be named .h5 or .hdf5"):
        load_keras(renamed)


def test_a_folder_that_is_not_a_saved_model_is_refused(tmp_path):
    with pytest.raises(ParityError, match="is a folder without saved_model.pb"):
        load_keras(tmp_path)


def test_a_saved_model_that_writes_files_is_refused_unless_unsafe(tmp_path):
    import tensorflow as tf

    class Logger(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
        def serve(self, x):
            tf.io.write_file(str(tmp_path / "written"), tf.strings.as_string(x[0, 0]))
            return {"y": x * 2.0}

    module = Logger()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.serve)
    with pytest.raises(ParityError, match="holds WriteFile .* pass --unsafe"):
        load_keras(tmp_path / "saved")
    model = load_keras(tmp_path / "saved", unsafe=True)
    assert [tensor.name for tensor in model.inputs] == ["x"]


def test_a_saved_model_that_prints_to_a_file_or_saves_is_refused(tmp_path):
    """Outside the old deny list: ``tf.print`` to a file, ``SaveV2`` with any
    prefix. The allow-list refuses both before TensorFlow calls the graph;
    printing to stderr stays allowed."""
    import tensorflow as tf

    printed, saved = tmp_path / "printed.txt", tmp_path / "passwd"

    class Writer(tf.Module):
        def __init__(self, stream: object, save: bool) -> None:
            self.v = tf.Variable(2.0)
            self.stream, self.save = stream, save

        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
        def serve(self, x):
            tf.print("x", x, output_stream=self.stream)
            if self.save:
                tf.raw_ops.SaveV2(
                    prefix=str(saved), tensor_names=["v"], shape_and_slices=[""], tensors=[self.v]
                )
            return {"y": x * self.v}

    cases = {
        "printer": (f"file://{printed}", False, "holds PrintV2 to 'file://"),
        "saver": (sys.stderr, True, "holds SaveV2"),
    }
    for name, (stream, save, words) in cases.items():
        module = Writer(stream, save)
        tf.saved_model.save(module, str(tmp_path / name), signatures=module.serve)
        with pytest.raises(ParityError, match=f"{words}.* pass --unsafe"):
            load_keras(tmp_path / name)
    assert not printed.exists() and not list(tmp_path.glob("passwd*"))
    module = Writer(sys.stderr, False)
    tf.saved_model.save(module, str(tmp_path / "stderr"), signatures=module.serve)
    assert [tensor.name for tensor in load_keras(tmp_path / "stderr").inputs] == ["x"]


def test_a_saved_model_holding_a_fifo_is_refused(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / "variables").mkdir()
    os.mkfifo(tmp_path / "variables" / "variables.index")
    with pytest.raises(ParityError, match="variables.index: is a FIFO"):
        load_keras(tmp_path)


def test_a_saved_model_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    (tmp_path / "saved_model.pb").write_bytes(b"\0" * 5000)
    monkeypatch.setenv("PARITY_MAX_MODEL_BYTES", "1000")
    with pytest.raises(ParityError, match="the SavedModel takes 4.9 KiB, beyond"):
        load_keras(tmp_path)


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


@needs_proc
def test_memory_stays_flat_over_10000_runs(exported_zoo):
    _, manifest, path = exported_zoo["masked_lstm"]
    bundle = runtime.load_bundle(path, device="cpu")
    feeds = sample_inputs(manifest.graph("model").inputs, 2, seed=0, mask=manifest.mask).inputs
    growth = _growth(lambda: bundle.run(feeds), warmup=500, repeats=10_000)
    assert growth < 20, f"resident memory grew by {growth:.1f} MB over 10,000 runs"


@needs_proc
def test_memory_stays_flat_over_1000_generations(exported_zoo):
    _, manifest, path = exported_zoo["sine_seq2seq"]
    bundle = runtime.load_bundle(path, device="cpu")
    encoder = manifest.graph("encoder")
    feeds = sample_inputs(encoder.inputs, 2, time=12, seed=0).inputs
    growth = _growth(lambda: runtime.generate(bundle, feeds, steps=10), warmup=100, repeats=1000)
    assert growth < 20, f"resident memory grew by {growth:.1f} MB over 1,000 generations"


@needs_proc
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
