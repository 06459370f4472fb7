"""FACTS.md's silent mis-conversion: TimeDistributed over a dynamic time axis.

Keras 3 traces ``TimeDistributed`` wrong inside ``tf.function`` when the time
axis is dynamic; the exporter folds time into batch before tracing. The exact
model of FACTS.md must export right at batch > time, batch < time and batch 1.
"""

import keras
import numpy as np
import onnxruntime as ort
import pytest

from parity.exporter import keras_to_onnx
from parity.exporter.rewrite import needs_repair, repair

SHAPES = [(4, 30, 5), (1, 7, 5), (30, 4, 5)]


@pytest.fixture(scope="module")
def facts_model():
    keras.utils.set_random_seed(3)
    x = keras.Input((None, 5), name="x")
    h = keras.layers.LSTM(8, return_sequences=True)(x)
    y = keras.layers.TimeDistributed(keras.layers.Dense(5), name="y")(h)
    return keras.Model(x, y)


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("shape", SHAPES)
def test_facts_model_exports_right_at_every_shape(facts_model, shape):
    converted = keras_to_onnx(facts_model)
    assert converted.inputs[0].shape == ("batch", "time", 5)
    assert converted.outputs[0].shape == ("batch", "time", 5)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    (actual,) = _session(converted.proto).run(None, {"x": x})
    expected = np.asarray(facts_model(x))
    assert actual.shape == shape
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-4)


def test_the_repair_is_what_makes_it_right(facts_model):
    """Without the repair the same conversion is wrong, so this test notices
    the day either Keras or the repair changes."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, None, 5), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(facts_model, input_signature=signature, opset=17)
    x = np.random.default_rng(0).normal(size=(4, 30, 5)).astype(np.float32)
    (wrong,) = _session(proto).run(None, {"x": x})
    assert wrong.shape != (4, 30, 5)
    repaired = repair(facts_model)
    assert needs_repair(facts_model) and not needs_repair(repaired)
    # the repaired model shares the original's weights
    assert {id(w) for w in repaired.weights} == {id(w) for w in facts_model.weights}


def test_time_distributed_cnn_over_dynamic_time():
    keras.utils.set_random_seed(4)
    frames = keras.Input((None, 8, 8, 1), name="frames")
    h = keras.layers.TimeDistributed(keras.layers.Conv2D(3, 3, activation="relu"))(frames)
    h = keras.layers.TimeDistributed(keras.layers.MaxPooling2D())(h)
    h = keras.layers.TimeDistributed(keras.layers.Flatten())(h)
    probs = keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.LSTM(4)(h))
    model = keras.Model(frames, probs)
    converted = keras_to_onnx(model)
    assert converted.inputs[0].domain == {"kind": "uniform", "low": 0.0, "high": 1.0}
    session = _session(converted.proto)
    for shape in [(3, 6, 8, 8, 1), (6, 2, 8, 8, 1), (1, 1, 8, 8, 1)]:
        x = np.random.default_rng(1).uniform(size=shape).astype(np.float32)
        (actual,) = session.run(None, {"frames": x})
        np.testing.assert_allclose(actual, np.asarray(model(x)), atol=1e-5, rtol=1e-4)


def test_recurrent_layers_trace_without_cudnn(facts_model, monkeypatch):
    """On a GPU machine Keras would trace cuDNN's kernel, which tf2onnx cannot
    convert; conversion turns it off for the trace and restores it after."""
    import tf2onnx

    from parity.exporter.convert import _recurrent_layers

    layers = _recurrent_layers(facts_model)
    assert layers and all(layer.use_cudnn == "auto" for layer in layers)
    seen = []
    convert = tf2onnx.convert.from_keras

    def spy(model, **kwargs):
        seen.extend(layer.use_cudnn for layer in _recurrent_layers(model))
        return convert(model, **kwargs)

    monkeypatch.setattr(tf2onnx.convert, "from_keras", spy)
    keras_to_onnx(facts_model)
    assert seen and not any(seen)
    assert all(layer.use_cudnn == "auto" for layer in layers)


def test_bidirectional_inner_layers_trace_without_cudnn():
    from parity.exporter.convert import _non_cudnn, _recurrent_layers

    x = keras.Input((None, 3))
    model = keras.Model(x, keras.layers.Bidirectional(keras.layers.GRU(2))(x))
    layers = _recurrent_layers(model)
    assert len(layers) >= 2  # the forward and backward copies
    with _non_cudnn(model):
        assert not any(layer.use_cudnn for layer in layers)
    assert all(layer.use_cudnn == "auto" for layer in layers)


def test_the_fold_is_time_major_so_the_recurrent_layer_reads_it_untransposed(exported_zoo):
    """The LSTM after TimeDistributed layers reads the unfolded features as
    they come (ONNX's recurrent ops are time-major): no transpose of the
    convolution features, only of the frames going in."""
    import onnx

    graph = onnx.load(exported_zoo["td_cnn_lstm"][2] / "model.onnx").graph
    producer = {out: node for node in graph.node for out in node.output}
    (lstm,) = [node for node in graph.node if node.op_type == "LSTM"]
    assert producer[lstm.input[0]].op_type == "Reshape"
