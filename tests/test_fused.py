"""Masking + LSTM exported as ONNX's fused LSTM with sequence lengths."""

import keras
import numpy as np
import onnx
import pytest

import models
import runtime
from exporter.fused import fuse_masked_lstm
from exporter.signature import find_mask
from runtime.errors import InputError
from runtime.sampling import sample_inputs


def test_zoo_masked_classifier_is_fused(exported_zoo):
    trained, manifest, path = exported_zoo["masked_lstm"]
    assert manifest.mask.fused and manifest.mask.padding == "post"
    ops = [node for node in onnx.load(path / "model.onnx").graph.node]
    (lstm,) = [node for node in ops if node.op_type == "LSTM"]
    assert lstm.input[4]  # sequence_lens
    assert not any(node.op_type == "Loop" for node in ops)
    bundle = runtime.load_bundle(path, device="cpu")
    spec = manifest.graph("model").inputs[0]
    sample = sample_inputs([spec], 7, seed=3, mask=manifest.mask)
    x = sample.inputs[spec.name]
    x[3] = manifest.mask.value  # a row that is all padding
    expected = np.asarray(trained.model(x))
    np.testing.assert_allclose(bundle.run({spec.name: x})["probs"], expected, atol=1e-5, rtol=1e-4)


def test_runtime_refuses_inputs_the_fused_graph_would_get_wrong(exported_zoo):
    _, manifest, path = exported_zoo["masked_lstm"]
    bundle = runtime.load_bundle(path, device="cpu")
    spec = manifest.graph("model").inputs[0]
    x = sample_inputs([spec], 2, seed=0, mask=manifest.mask, lengths=np.array([3, 5])).inputs
    pre = np.flip(x[spec.name], axis=1).copy()  # pre-padded
    with pytest.raises(InputError, match="after a padded one"):
        bundle.run({spec.name: pre})


def test_keras_semantics_at_padded_steps_of_return_sequences():
    keras.utils.set_random_seed(2)
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.LSTM(5, return_sequences=True)(keras.layers.Masking(0.0)(x))
    model = keras.Model(x, keras.layers.Dense(2, name="scores")(h))
    mask = find_mask(model)
    fused = fuse_masked_lstm(model, mask, opset=17)
    assert fused is not None
    import onnxruntime as ort

    session = ort.InferenceSession(
        fused.proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    sample = sample_inputs(fused.inputs, 5, time=9, seed=1, mask=mask)
    data = sample.inputs["steps"]
    data[2] = 0.0
    (actual,) = session.run(None, {"steps": data})
    np.testing.assert_allclose(actual, np.asarray(model(data)), atol=1e-5, rtol=1e-4)


def test_other_forms_fall_back_to_the_general_graph():
    seed = models.get("masked_lstm").build("seed")  # dropout: Keras traces an unfusable loop
    assert fuse_masked_lstm(seed, find_mask(seed), opset=17) is None
    x = keras.Input((None, 3), name="steps")
    h = keras.layers.Masking(0.0)(x)
    h = keras.layers.LSTM(4, return_sequences=True)(h)
    stacked = keras.Model(x, keras.layers.LSTM(2)(h))
    assert fuse_masked_lstm(stacked, find_mask(stacked), opset=17) is None
