"""Models in the forms public examples write them: ``Sequential`` with an
``Input``, an ``InputLayer``, ``input_shape=`` on the first layer, or built by
``fit``; the seeds' own Sequential models. Each exports, fuses where its
functional twin fuses, and verifies against TensorFlow."""

import keras
import numpy as np
import onnx
import pytest

from parity import verify
from parity.exporter import export_keras
from parity.runtime.errors import ParityError

STEPS, FEATURES = 9, 4


def _masked_classifier_layers():
    """The second seed's classifier at a small size: Masking, an LSTM with
    dropout on inputs and state, a softmax over 13 classes."""
    return [
        keras.layers.Masking(mask_value=0.0),
        keras.layers.LSTM(8, dropout=0.5, recurrent_dropout=0.5),
        keras.layers.Dense(13, activation="softmax"),
    ]


def _sequential(form: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = _masked_classifier_layers()
    if form == "input":
        return keras.Sequential([keras.Input((STEPS, FEATURES)), *layers])
    if form == "input_layer":
        return keras.Sequential([keras.layers.InputLayer(shape=(STEPS, FEATURES)), *layers])
    if form == "input_shape":
        first = keras.layers.Masking(mask_value=0.0, input_shape=(STEPS, FEATURES))
        return keras.Sequential([first, *layers[1:]])
    if form == "add":
        model = keras.Sequential()
        model.add(keras.layers.Masking(mask_value=0, input_shape=(STEPS, FEATURES)))
        for layer in layers[1:]:
            model.add(layer)
        return model
    if form == "fit":
        model = keras.Sequential(layers)
        model.compile("adam", "categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(8, STEPS, FEATURES)).astype("float32")
        model.fit(x, np.eye(13, dtype="float32")[np.arange(8)], epochs=1, verbose=0)
        return model
    raise AssertionError(form)


def _functional() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((STEPS, FEATURES), name="sequence")
    y = x
    for layer in _masked_classifier_layers():
        y = layer(y)
    return keras.Model(x, y)


def _ops(bundle) -> set[str]:
    return {node.op_type for node in onnx.load(bundle / "model.onnx").graph.node}


@pytest.fixture(scope="module")
def functional_ops(tmp_path_factory) -> set[str]:
    folder = tmp_path_factory.mktemp("functional")
    _functional().save(folder / "m.keras")
    export_keras(folder / "m.keras", folder / "bundle")
    return _ops(folder / "bundle")


@pytest.mark.parametrize("form", ["input", "input_layer", "input_shape", "add", "fit"])
def test_sequential_exports_fuses_and_verifies(tmp_path, form, functional_ops):
    path = tmp_path / "m.keras"
    _sequential(form).save(path)
    manifest = export_keras(path, tmp_path / "bundle")
    recurrent = {"LSTM", "Loop"}
    assert functional_ops & recurrent == {"LSTM"}
    assert _ops(tmp_path / "bundle") & recurrent == {"LSTM"}  # fused as its functional twin
    assert manifest.mask is not None and manifest.mask.fused
    (spec,) = manifest.graph("model").inputs
    assert not spec.name.startswith("keras_tensor")  # a layer's name, not Keras' internal one
    report = verify.check(tmp_path / "bundle", path, verify.VerifyOptions(batches=(1, 4), seed=1))
    assert report.passed, report.table()
    compared = [c for c in report.checks if c.kind == "output"]
    assert compared and all(c.rule == "noise" for c in compared)  # the float64 rebuild ran


def test_first_seed_type_2_sequential_time_distributed(tmp_path):
    """The first seed's "Type 2": InputLayer over image sequences, TimeDistributed
    Conv2D and MaxPooling2D, LSTM, Dense (small images)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.InputLayer(shape=(3, 12, 12, 1)),
            keras.layers.TimeDistributed(keras.layers.Conv2D(4, (3, 3))),
            keras.layers.TimeDistributed(keras.layers.MaxPooling2D((2, 2), strides=(2, 2))),
            keras.layers.TimeDistributed(keras.layers.Flatten()),
            keras.layers.LSTM(5),
            keras.layers.Dense(3),
        ]
    )
    model.save(tmp_path / "m.keras")
    export_keras(tmp_path / "m.keras", tmp_path / "bundle")
    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.keras", verify.VerifyOptions(batches=(2,))
    )
    assert report.passed, report.table()


def test_sequential_never_built_is_refused_with_how_to_fix(tmp_path):
    from parity.exporter import export_model

    model = keras.Sequential([keras.layers.LSTM(4), keras.layers.Dense(2)])
    with pytest.raises(ParityError, match="never built"):
        export_model(model, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_lambda_model_exports_with_unsafe_and_is_refused_without(tmp_path):
    """A model the user allowed to load (``unsafe``) exports, the fused export
    included; without ``unsafe`` the refusal names the Lambda."""
    keras.utils.set_random_seed(0)
    x = keras.Input((STEPS, FEATURES), name="sequence")
    y = keras.layers.LSTM(6)(x)
    y = keras.layers.Lambda(lambda t: t * 2.0, output_shape=(6,))(y)
    keras.Model(x, keras.layers.Dense(3)(y)).save(tmp_path / "m.keras")
    with pytest.raises(ParityError, match="Lambda"):
        export_keras(tmp_path / "m.keras", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    manifest = export_keras(tmp_path / "m.keras", tmp_path / "bundle", unsafe=True)
    assert any("fused LSTM" in note for note in manifest.notes)
    report = verify.check(
        tmp_path / "bundle", tmp_path / "m.keras", verify.VerifyOptions(batches=(2,), unsafe=True)
    )
    assert report.passed, report.table()


def test_inputs_of_different_lengths_get_their_own_time_axis(tmp_path):
    """Two sequence inputs, each read by its own LSTM: Keras does not tie their
    lengths, so neither does the graph; RepeatVector(4)'s known size stays 4."""
    from parity import runtime

    keras.utils.set_random_seed(0)
    a = keras.Input((None, 3), name="history")
    b = keras.Input((None, 2), name="context")
    merged = keras.layers.Concatenate()([keras.layers.LSTM(5)(a), keras.layers.GRU(4)(b)])
    repeated = keras.layers.RepeatVector(4, name="repeated")(merged)
    model = keras.Model([a, b], [keras.layers.Dense(2, name="scores")(merged), repeated])
    model.save(tmp_path / "m.keras")
    manifest = export_keras(tmp_path / "m.keras", tmp_path / "bundle")
    graph = manifest.graph("model")
    assert graph.input("history").shape == ("batch", "time", 3)
    assert graph.input("context").shape == ("batch", "context_time", 2)
    assert graph.output("repeated").shape == ("batch", 4, 9)
    bundle = runtime.load_bundle(tmp_path / "bundle")
    rng = np.random.default_rng(0)
    feeds = {"history": rng.normal(size=(2, 12, 3)), "context": rng.normal(size=(2, 9, 2))}
    got = bundle.run(feeds)
    want = model([feeds["history"].astype("float32"), feeds["context"].astype("float32")])
    np.testing.assert_allclose(got["scores"], np.asarray(want[0]), atol=1e-5)


def test_inputs_the_model_ties_share_one_time_axis(tmp_path):
    keras.utils.set_random_seed(0)
    a = keras.Input((None, 3), name="left")
    b = keras.Input((None, 3), name="right")
    y = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Add()([a, b]))
    keras.Model([a, b], y).save(tmp_path / "m.keras")
    graph = export_keras(tmp_path / "m.keras", tmp_path / "bundle").graph("model")
    assert [spec.shape[1] for spec in (*graph.inputs, *graph.outputs)] == ["time"] * 3
