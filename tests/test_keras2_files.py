"""Files written by a real TensorFlow 2.15 / Keras 2 install, the way both
seed documents save models (``model.save('x.h5')``, ``ModelCheckpoint`` to
``.hdf5``, a SavedModel folder). They and the outputs TensorFlow 2.15 gave
are in tests/fixtures/keras2, with the script that made them; this suite
never installs TensorFlow 2.15."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from parity.cli.app import cli
from parity.exporter import load_keras

FIXTURES = Path(__file__).parent / "fixtures" / "keras2"
MODELS = json.loads((FIXTURES / "fixtures.json").read_text())["models"]
OBJECTS = FIXTURES / "custom_masking_layer_objects.py"
# Stateful models are read by the streaming export; a Keras 2 Lambda that
# names ``K`` cannot run under Keras 3 (see the last test).
LOADABLE = [
    (name, file)
    for name, entry in MODELS.items()
    for file in entry["files"]
    if not name.startswith("stateful") and "lambda" not in file
]


@pytest.mark.parametrize(("name", "file"), LOADABLE)
def test_keras2_files_load_and_compute_what_tensorflow_2_15_computed(name, file):
    entry = MODELS[name]
    objects = OBJECTS if "custom" in name else None
    model = load_keras(FIXTURES / file, custom_objects=objects)
    recorded = np.load(FIXTURES / entry["io"])
    inputs = [recorded[tensor.name] for tensor in model.inputs]
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    for index, output in enumerate(outputs):
        np.testing.assert_allclose(np.asarray(output), recorded[f"output_{index}"], atol=1e-6)


def _run(*args):
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.mark.parametrize("file", ["seq2seq_teacher_forcing_checkpoint.hdf5", "seq2seq_unrolled.h5"])
def test_keras2_seq2seq_files_export_as_seq2seq_and_verify(tmp_path, file):
    """The decoder's ``initial_state`` written as extra inputs of its call,
    and the seed's nested encoder model, read as Keras 2 meant them."""
    bundle = tmp_path / "bundle"
    exported = _run("export", FIXTURES / file, bundle)
    assert exported.exit_code == 0, exported.output
    assert "seq2seq:" in exported.output
    verified = _run("verify", FIXTURES / file, bundle, "-q", "--batch", "2")
    assert verified.exit_code == 0, verified.output


def test_a_keras2_lambda_that_names_k_is_reported_as_the_models_own_error(tmp_path):
    """Keras 3 rebuilds a Keras 2 ``Lambda(lambda x: K.concatenate(x, axis=1))``
    without ``K``: running it raises NameError in the user's code, which is
    said as such (exit 2), never as a converter's failure or a crash."""
    model, bundle = FIXTURES / "seq2seq_unrolled_lambda.h5", tmp_path / "bundle"
    assert _run("export", model, bundle, "--unsafe").exit_code == 0  # re-rolled, not traced
    verified = _run("verify", model, bundle, "--unsafe", "-q", "--batch", "2")
    assert verified.exit_code == 2, verified.output
    (error,) = [line for line in verified.output.splitlines() if line.startswith("error:")]
    assert "the model's own code raised NameError in Lambda" in error
    assert "make_keras2_fixtures.py, line" in error and "name 'K' is not defined" in error
