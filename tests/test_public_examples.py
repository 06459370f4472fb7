"""Models built the way public examples build them (keras.io, the TensorFlow
tutorials, the seed documents), at small sizes: each is saved as its example
saves it (``.keras``, legacy ``.h5``, a SavedModel folder), exported with
``export_keras`` and verified against TensorFlow with ``verify.check``."""

from pathlib import Path

import keras
import numpy as np
import pytest

from parity import runtime, verify
from parity.exporter import export_keras, load_keras
from parity.runtime.errors import InputError, ParityError
from tests import faults

FEATURES = 3
VOCAB = 20


def _exported(model: keras.Model, folder: Path, name: str = "m.keras", **options):
    """Save ``model`` as ``name`` (the suffix picks the format), export it,
    verify it at batches 1 and 3 and return the manifest."""
    path = folder / name
    model.save(path)
    manifest = export_keras(path, folder / "bundle", **options)
    report = verify.check(folder / "bundle", path, verify.VerifyOptions(batches=(1, 3)))
    assert report.passed, report.table()
    return manifest


def _shapes(manifest, key: str = "model") -> dict[str, tuple]:
    graph = manifest.graph(key)
    return {spec.name: spec.shape for spec in (*graph.inputs, *graph.outputs)}


def _no_numbered_dims(manifest) -> None:
    """Every dynamic axis is ``batch`` or a time axis: none is ``<name>_dim<i>``."""
    for graph in manifest.graphs.values():
        for spec in (*graph.inputs, *graph.outputs):
            for dim in spec.shape:
                assert not (isinstance(dim, str) and "_dim" in dim), (spec.name, spec.shape)


def test_second_seed_classifier_saved_as_hdf5(tmp_path):
    """Sequential, Masking(input_shape=...), LSTM with dropout on inputs and
    state, softmax over 13 classes; compiled, fitted, ``model.save('...hdf5')``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential()
    model.add(keras.layers.Masking(mask_value=0, input_shape=(10, 4)))
    model.add(keras.layers.LSTM(8, dropout=0.5, recurrent_dropout=0.5))
    model.add(keras.layers.Dense(13, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(6, 10, 4)).astype("float32")
    model.fit(x, np.eye(13, dtype="float32")[:6], epochs=1, verbose=0)
    manifest = _exported(model, tmp_path, "keras_rnn_epochend.hdf5")
    assert manifest.mask is not None and manifest.mask.fused
    assert manifest.source["file"] == "keras_rnn_epochend.hdf5"


def _as_keras_2_wrote_it(path: Path, time_major: bool) -> None:
    """Give every recurrent layer in the HDF5 file ``path`` the option
    ``time_major``, which Keras 2 (``tf.keras``) writes and Keras 3 refuses."""
    import json

    import h5py

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] in ("LSTM", "GRU"):
                layer["config"]["time_major"] = time_major
        h5.attrs["model_config"] = json.dumps(config)


def test_keras_2_hdf5_recurrent_options_keras_3_refuses(tmp_path):
    """A Keras 2 file's ``time_major: false`` is dropped (Keras 3 fails on
    it: "Unrecognized keyword arguments passed to LSTM"); ``true`` is refused."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(5), keras.layers.Dense(2)])
    model.save(tmp_path / "m.h5")
    _as_keras_2_wrote_it(tmp_path / "m.h5", time_major=False)
    export_keras(tmp_path / "m.h5", tmp_path / "bundle")
    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.h5", verify.VerifyOptions(batches=(2,))
    )
    assert report.passed, report.table()
    _as_keras_2_wrote_it(tmp_path / "m.h5", time_major=True)
    with pytest.raises(ParityError, match="layer 'lstm.*' is time-major"):
        load_keras(tmp_path / "m.h5")


def test_first_seed_type_1_conv_rows_saved_as_h5(tmp_path):
    """Sequential Conv2D, Conv2D, MaxPooling2D, Reshape into (rows, features),
    Dropout, LSTM, Dense, Dense, softmax; compiled with ``loss="mse"`` (which
    Keras 3 cannot compile back from an .h5 file: loaded uncompiled)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Conv2D(4, (3, 3), padding="same", input_shape=(8, 6, 1)),
            keras.layers.Activation("relu"),
            keras.layers.Conv2D(4, (3, 3), padding="same"),
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(pool_size=(2, 2)),
            keras.layers.Reshape((4, 12)),
            keras.layers.Dropout(0.25),
            keras.layers.LSTM(5),
            keras.layers.Dense(6),
            keras.layers.Dense(3),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    manifest = _exported(model, tmp_path, "flux_model.h5")
    (spec,) = manifest.graph("model").inputs
    assert spec.shape == ("batch", 8, 6, 1)


def test_addition_rnn(tmp_path):
    """keras.io addition_rnn: LSTM encoder, RepeatVector, LSTM decoder,
    TimeDistributed(Dense) softmax over the characters."""
    keras.utils.set_random_seed(0)
    chars, maxlen, digits = 12, 7, 3
    model = keras.Sequential(
        [
            keras.Input((maxlen, chars)),
            keras.layers.LSTM(8),
            keras.layers.RepeatVector(digits + 1),
            keras.layers.LSTM(8, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(chars, activation="softmax")),
        ]
    )
    manifest = _exported(model, tmp_path)
    assert list(_shapes(manifest).values()) == [("batch", maxlen, chars), ("batch", 4, chars)]


def test_imdb_bidirectional_lstm(tmp_path):
    """keras.io bidirectional_lstm_imdb: int32 token ids of any length,
    Embedding, two Bidirectional LSTMs, a sigmoid."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 8)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    manifest = _exported(keras.Model(inputs, outputs), tmp_path)
    (spec,) = manifest.graph("model").inputs
    assert spec.shape == ("batch", "time")
    assert spec.domain == {"kind": "tokens", "vocab": VOCAB}


def _text_classifier() -> keras.Model:
    """The TensorFlow text-classification RNN tutorial (its TextVectorization
    left out): float32 ids, Embedding(mask_zero=True), Bidirectional LSTM."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None,), name="text"),
            keras.layers.Embedding(VOCAB, 8, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def test_text_classification_rnn_with_mask_zero(tmp_path):
    manifest = _exported(_text_classifier(), tmp_path)
    assert manifest.mask is not None and manifest.mask.source == "Embedding"
    _no_numbered_dims(manifest)


def test_token_ids_as_integers_and_outside_the_vocabulary(tmp_path):
    """The text classifier's ``Input`` is float32: integer ids are accepted on
    both runtimes, and an id beyond the vocabulary is refused on both (exit 2),
    not passed to TensorFlow (a traceback) or to ONNX Runtime (read silently)."""
    model = _text_classifier()
    model.save(tmp_path / "m.keras")
    export_keras(tmp_path / "m.keras", tmp_path / "bundle")
    bundle = runtime.load_bundle(tmp_path / "bundle")
    ids = np.array([[3, 5, 7, 0], [1, 2, 0, 0]], dtype=np.int64)
    got = next(iter(bundle.run({"text": ids}).values()))
    np.testing.assert_allclose(got, np.asarray(model(ids.astype("float32"))), atol=1e-5)
    report = verify.check(tmp_path / "bundle", tmp_path / "m.keras", inputs={"text": ids})
    assert report.passed, report.table()
    beyond = ids.copy()
    beyond[1, 1] = VOCAB
    with pytest.raises(InputError, match=r"outside the vocabulary \[0, 20\)"):
        bundle.run({"text": beyond})
    with pytest.raises(InputError, match=r"outside the vocabulary \[0, 20\)"):
        verify.check(tmp_path / "bundle", tmp_path / "m.keras", inputs={"text": beyond})


def test_weather_lstm(tmp_path):
    """keras.io timeseries_weather_forecasting, over a dynamic time axis."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 5))
    outputs = keras.layers.Dense(1)(keras.layers.LSTM(8)(inputs))
    manifest = _exported(keras.Model(inputs, outputs), tmp_path)
    assert list(_shapes(manifest).values()) == [("batch", "time", 5), ("batch", 1)]


def test_conv_lstm_next_frame_prediction(tmp_path):
    """keras.io conv_lstm: frames of any count, ConvLSTM2D twice with
    BatchNormalization, Conv3D to one channel (tiny frames)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 6, 6, 1))
    x = keras.layers.ConvLSTM2D(4, (3, 3), padding="same", return_sequences=True)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ConvLSTM2D(4, (1, 1), padding="same", return_sequences=True)(x)
    outputs = keras.layers.Conv3D(1, (3, 3, 3), activation="sigmoid", padding="same")(x)
    manifest = _exported(keras.Model(inputs, outputs), tmp_path)
    assert list(_shapes(manifest).values()) == [("batch", "time", 6, 6, 1)] * 2


def test_jena_gru_with_dropout(tmp_path):
    """Deep Learning with Python's Jena climate GRU: dropout and
    recurrent_dropout (inactive at inference), Dense(1)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.GRU(6, dropout=0.2, recurrent_dropout=0.2),
            keras.layers.Dense(1),
        ]
    )
    _no_numbered_dims(_exported(model, tmp_path))


def test_conv1d_then_lstm(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            keras.layers.Conv1D(4, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(6),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    manifest = _exported(model, tmp_path)
    assert list(_shapes(manifest).values()) == [("batch", "time", FEATURES), ("batch", 2)]


def test_time_distributed_video_classifier_over_dynamic_time(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 8, 8, 1), name="frames")
    x = keras.layers.TimeDistributed(keras.layers.Conv2D(4, (3, 3), activation="relu"))(inputs)
    x = keras.layers.TimeDistributed(keras.layers.MaxPooling2D())(x)
    x = keras.layers.TimeDistributed(keras.layers.Flatten())(x)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.LSTM(5)(x))
    manifest = _exported(keras.Model(inputs, outputs), tmp_path)
    assert _shapes(manifest)["frames"] == ("batch", "time", 8, 8, 1)


def _nmt_bidirectional() -> keras.Model:
    """An NMT training model: token ids, Bidirectional(LSTM) encoder whose
    forward and backward states are concatenated into the decoder's initial
    state, teacher-forced decoder, softmax over the target vocabulary."""
    keras.utils.set_random_seed(0)
    source = keras.Input((None,), name="source")
    target = keras.Input((None,), name="target")
    x = keras.layers.Embedding(VOCAB, 6)(source)
    _, fh, fc, bh, bc = keras.layers.Bidirectional(keras.layers.LSTM(4, return_state=True))(x)
    h = keras.layers.Concatenate()([fh, bh])
    c = keras.layers.Concatenate()([fc, bc])
    y = keras.layers.Embedding(VOCAB, 6)(target)
    y = keras.layers.LSTM(8, return_sequences=True)(y, initial_state=[h, c])
    return keras.Model([source, target], keras.layers.Dense(VOCAB, activation="softmax")(y))


def test_nmt_seq2seq_with_bidirectional_encoder(tmp_path):
    """Split into encoder and step graphs, as every seq2seq training model is."""
    _exported(_nmt_bidirectional(), tmp_path)


def test_nmt_seq2seq_as_one_teacher_forced_graph(tmp_path):
    """With ``seq2seq=False`` the training model exports as one graph, with a
    time axis per input (source and target differ in length)."""
    manifest = _exported(_nmt_bidirectional(), tmp_path, seq2seq=False)
    shapes = _shapes(manifest)
    assert shapes["source"] == ("batch", "time")
    assert shapes["target"] == ("batch", "target_time")


def test_masked_stacked_tagger(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, FEATURES), name="tokens")
    x = keras.layers.Masking(mask_value=0.0)(inputs)
    x = keras.layers.LSTM(6, return_sequences=True)(x)
    x = keras.layers.LSTM(6, return_sequences=True)(x)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="softmax"))(x)
    manifest = _exported(keras.Model(inputs, outputs, name="tagger"), tmp_path)
    assert manifest.mask is not None
    assert list(_shapes(manifest).values()) == [("batch", "time", FEATURES), ("batch", "time", 4)]


def test_adapted_normalization_lstm_layer_normalization(tmp_path):
    keras.utils.set_random_seed(0)
    normalization = keras.layers.Normalization()
    normalization.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(16, 5, FEATURES)))
    inputs = keras.Input((None, FEATURES))
    x = keras.layers.LSTM(6, return_sequences=True)(normalization(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.LayerNormalization()(x))
    manifest = _exported(keras.Model(inputs, outputs), tmp_path)
    _no_numbered_dims(manifest)
    # the float64 reference normalizes by the adapted mean too, so TensorFlow
    # against ONNX Runtime (not only the golden data) catches a damaged weight
    damaged = faults.damaged_copy(tmp_path / "bundle", tmp_path / "bad", faults.scale_kernel(1.01))
    report = verify.check(damaged, tmp_path / "m.keras", verify.VerifyOptions(batches=(1, 3)))
    assert [c for c in report.failures if c.kind == "output"], report.table()


def _exported_saved_model(folder: Path) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, FEATURES), name="series")
    x = keras.layers.LSTM(6, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model.export(folder / "saved", verbose=False)
    return model


def test_saved_model_from_keras_export(tmp_path):
    """``model.export(dir)``: the serving signature's input names and output
    keys, named axes, one graph; verified against the signature itself."""
    model = _exported_saved_model(tmp_path)
    manifest = export_keras(tmp_path / "saved", tmp_path / "bundle")
    assert _shapes(manifest) == {
        "series": ("batch", "time", FEATURES),
        "output_0": ("batch", "time", 2),
    }
    assert any("SavedModel" in note for note in manifest.notes)
    assert manifest.source["file"] == "saved" and len(manifest.source["sha256"]) == 64
    signature = load_keras(tmp_path / "saved")
    report = verify.check(tmp_path / "bundle", signature, verify.VerifyOptions(batches=(1, 3)))
    assert report.passed, report.table()
    with pytest.raises(ParityError, match="no Keras layers to split"):
        export_keras(tmp_path / "saved", tmp_path / "refused", seq2seq=True)
    bundle = runtime.load_bundle(tmp_path / "bundle")
    x = np.random.default_rng(0).normal(size=(2, 9, FEATURES)).astype("float32")
    np.testing.assert_allclose(bundle.run({"series": x})["output_0"], model(x), atol=1e-5)


def test_saved_model_from_tf_saved_model_save(tmp_path):
    """``tf.saved_model.save`` of a ``tf.Module`` whose signature returns a
    dict: its argument and key names become the graph's."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)

    class Forecaster(tf.Module):
        def __init__(self):
            self.lstm, self.head = keras.layers.LSTM(4), keras.layers.Dense(2)

        @tf.function(input_signature=[tf.TensorSpec((None, None, FEATURES), name="history")])
        def serve(self, history):
            return {"forecast": self.head(self.lstm(history))}

    module = Forecaster()
    module.serve(tf.zeros((1, 2, FEATURES)))
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.serve)
    manifest = export_keras(tmp_path / "saved", tmp_path / "bundle")
    assert _shapes(manifest) == {"history": ("batch", "time", FEATURES), "forecast": ("batch", 2)}
    report = verify.check(
        tmp_path / "bundle", load_keras(tmp_path / "saved"), verify.VerifyOptions(batches=(1, 3))
    )
    assert report.passed, report.table()


def test_saved_model_verifies_from_its_folder(tmp_path):
    _exported_saved_model(tmp_path)
    export_keras(tmp_path / "saved", tmp_path / "bundle")
    report = verify.check(
        tmp_path / "bundle", tmp_path / "saved", verify.VerifyOptions(batches=(1,))
    )
    assert report.passed, report.table()


def test_lambda_in_an_h5_file_is_refused_unless_unsafe(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, FEATURES), name="sequence")
    x = keras.layers.Lambda(lambda t: t * 2.0, output_shape=(5, FEATURES), name="double")(inputs)
    keras.Model(inputs, keras.layers.LSTM(3)(x)).save(tmp_path / "m.h5")
    with pytest.raises(ParityError, match="Lambda layer 'double'.*--unsafe"):
        export_keras(tmp_path / "m.h5", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    export_keras(tmp_path / "m.h5", tmp_path / "bundle", unsafe=True)
    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.h5", verify.VerifyOptions(batches=(2,), unsafe=True)
    )
    assert report.passed, report.table()
