"""A model with a custom layer loads where its class is given: --custom-objects
FILE.py on the command line, ``custom_objects=`` in Python. The layer is the
kind tf2onnx's keras tests write (test_masking_custom): a pooling layer that
consumes the mask, registered with ``keras.saving.register_keras_serializable``.
Each command runs in a fresh process, which has never imported the class."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parity.exporter.custom_objects import custom_objects
from parity.runtime.errors import ParityError

LAYER = '''
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="parity_test")
class MaskedMean(keras.layers.Layer):
    """The mean over time of the valid steps (the mask) of a sequence."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None
'''

BUILD = """
import sys, keras
from keras import layers
from parity.exporter.custom_objects import custom_objects
MaskedMean = custom_objects(sys.argv[1])["MaskedMean"]
tokens = keras.Input((None,), name="tokens")
x = layers.Embedding(30, 6, mask_zero=True)(tokens)
x = layers.LSTM(5, return_sequences=True)(x)
out = layers.Dense(3, activation="softmax")(MaskedMean()(x))
keras.Model(tokens, out, name="custom").save(sys.argv[2])
"""


def _parity(*args):
    return subprocess.run(
        [sys.executable, "-m", "parity", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_custom_layer_loads_with_its_file(tmp_path):
    layer = tmp_path / "my_layers.py"
    layer.write_text(LAYER)
    model = tmp_path / "custom.keras"
    built = subprocess.run(
        [sys.executable, "-c", BUILD, layer, model], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    bundle = tmp_path / "bundle"
    refused = _parity("export", model, bundle)
    assert refused.returncode == 2, refused.stderr
    assert "--custom-objects FILE.py" in refused.stderr and not bundle.exists()
    exported = _parity("export", model, bundle, "--custom-objects", layer)
    assert exported.returncode == 0, exported.stderr
    verified = _parity("verify", model, bundle, "--custom-objects", layer, "-q")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASSED" in verified.stdout


def test_a_custom_objects_file_that_raises_names_its_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import keras\n\nraise ValueError('no such thing')\n")
    with pytest.raises(
        ParityError, match=r"broken.py:3: your custom objects file raised ValueError"
    ):
        custom_objects(broken)
    with pytest.raises(ParityError, match="expected a Python file"):
        custom_objects(tmp_path / "missing.py")
    assert custom_objects({"f": len}) == {"f": len} and custom_objects(None) == {}


def test_a_file_hands_over_its_custom_objects_mapping_or_what_it_defines(tmp_path):
    listed = tmp_path / "listed.py"
    listed.write_text("import math\n\ncustom_objects = {'expand': math.exp}\n")
    assert custom_objects(listed) == {"expand": __import__("math").exp}
    defined = tmp_path / "defined.py"
    defined.write_text(
        "from typing import Any\n\n\nclass Pool:\n    pass\n\n\ndef scale(x):\n    return x\n"
    )
    # typing.Any, imported, would stand in for Keras' own Any op
    assert sorted(custom_objects(defined)) == ["Pool", "scale"]
