"""What an app in another language needs to check a bundle: the manifest's
JSON Schema (shipped in the package, the reader's own source of fields,
vocabularies and limits) and the golden data in ONNX's test-data layout
(serialized TensorProto files), both read here without parity's reader."""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import typing

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from parity.runtime.bundle_format import manifest as manifest_module
from parity.runtime.bundle_format.manifest import SCHEMA, parse_manifest, vocabulary
from parity.runtime.errors import BundleError

SCHEMA_FILE = importlib.resources.files("parity.runtime.bundle_format") / "manifest.schema.json"


def _manifests(exported_zoo):
    return {name: json.loads((path / "manifest.json").read_text()) for name, (_, _, path) in
            exported_zoo.items()}  # fmt: skip


def test_the_schema_is_shipped_valid_and_the_typed_vocabularies_are_its_own():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema == SCHEMA
    jsonschema.Draft202012Validator.check_schema(schema)
    for literal, (definition, field) in {
        "Kind": ("manifest", "kind"),
        "Feedback": ("seq2seq", "feedback"),
        "Start": ("seq2seq", "start"),
        "Init": ("state", "init"),
        "Padding": ("mask", "padding"),
        "MaskSource": ("mask", "source"),
        "SourceForm": ("seq2seq", "form"),
    }.items():
        assert typing.get_args(getattr(manifest_module, literal)) == vocabulary(definition, field)


def test_every_bundle_manifest_fits_the_schema(exported_zoo):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for name, data in _manifests(exported_zoo).items():
        assert not list(validator.iter_errors(data)), name
        assert data["test_data"], name


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.update(kind="double"),
        lambda m: m.update(opset=1000),
        lambda m: m.update(surprise=1),
        lambda m: m["graphs"]["model"]["inputs"][0].update(dtype="complex64"),
        lambda m: m["graphs"]["model"]["inputs"][0]["shape"].extend([1] * 8),
        lambda m: m["graphs"]["model"].update(file="../model.onnx"),
        lambda m: m["graphs"]["model"].update(sha256="0" * 63),
        lambda m: m["mask"].update(padding="middle"),
        lambda m: m.pop("versions"),
        lambda m: m["test_data"].update({"/etc/passwd": "0" * 64}),
    ],
)
def test_the_schema_and_the_reader_refuse_the_same_damage(exported_zoo, damage):
    data = copy.deepcopy(_manifests(exported_zoo)["masked_lstm"])
    parse_manifest(copy.deepcopy(data))  # whole, both take it
    damage(data)
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data))
    with pytest.raises(BundleError):
        parse_manifest(data)


def test_the_test_data_sets_are_the_golden_data_and_run_in_onnx_runtime(exported_zoo):
    """Each set read as plain protobuf, its files checked by sha256, every
    graph run on its inputs by ONNX Runtime and held to its outputs."""
    for name, data in _manifests(exported_zoo).items():
        folder = exported_zoo[name][2]
        sets: dict[str, dict[str, dict[int, np.ndarray]]] = {}
        for relative, digest in data["test_data"].items():
            raw = (folder / relative).read_bytes()
            assert hashlib.sha256(raw).hexdigest() == digest
            _, graph, run, file = relative.split("/")
            kind, index = file.removesuffix(".pb").split("_")
            tensor = TensorProto.FromString(raw)
            sets.setdefault(f"{graph}/{run}", {}).setdefault(kind, {})[int(index)] = tensor
        graphs = {key: spec["file"] for key, spec in data["graphs"].items()}
        covered = {key.split("/")[0] for key in sets}
        assert covered == set(graphs), name  # every graph, the loop graph too
        for key, tensors in sets.items():
            session = ort.InferenceSession(str(folder / graphs[key.split("/")[0]]))
            inputs = [value.name for value in session.get_inputs()]
            outputs = [value.name for value in session.get_outputs()]
            feeds = {inputs[i]: numpy_helper.to_array(t) for i, t in tensors["input"].items()}
            assert all(tensors["input"][i].name == inputs[i] for i in tensors["input"])
            got = session.run(outputs, feeds)
            for index, tensor in tensors["output"].items():
                assert tensor.name == outputs[index]
                np.testing.assert_allclose(
                    got[index], numpy_helper.to_array(tensor), rtol=1e-4, atol=1e-5
                )
