"""The manifest is validated against one schema when it is read: every field
that is missing, unknown, of the wrong type or out of range is refused with one
line naming it, never a traceback."""

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.runtime.bundle_format.manifest import (
    MANIFEST_NAME,
    parse_manifest,
    read_manifest,
)
from parity.runtime.errors import BundleError
from tests import bundles


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """A single-graph and a seq2seq bundle: path and decoded manifest."""
    folder = tmp_path_factory.mktemp("manifests")
    bundles.write_single(folder / "single")
    bundles.write_seq2seq(folder / "seq2seq")
    return {
        kind: (folder / kind, json.loads((folder / kind / MANIFEST_NAME).read_text()))
        for kind in ("single", "seq2seq")
    }


@pytest.mark.parametrize("kind", ["single", "seq2seq"])
def test_written_manifests_read_back_equal(written, kind):
    path, data = written[kind]
    manifest = read_manifest(path)
    assert parse_manifest(json.loads(manifest.to_json())) == manifest


def _at(data: dict, path: tuple, value) -> dict:
    changed = copy.deepcopy(data)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()

# (where, value, words the message must contain)
BAD = [
    (("graphs", "model", "inputs", 0, "shape", 1), "abc def", "shape[1]"),
    (("graphs", "model", "inputs", 0, "shape", 2), -3, "out of range"),
    (("graphs", "model", "inputs", 0, "shape", 2), 2.5, "expected an integer"),
    (("graphs", "model", "inputs", 0, "shape", 2), True, "expected an integer"),
    (("graphs", "model", "inputs", 0, "dtype"), "float128", "dtype"),
    (("graphs", "model", "inputs", 0, "domain", "kind"), "gaussian", "domain.kind"),
    (("graphs", "model", "inputs", 1, "domain", "vocab"), -1, "vocab"),
    (("graphs", "model", "file"), "../elsewhere.onnx", "outside the bundle"),
    (("graphs", "model", "file"), "/etc/passwd", "outside the bundle"),
    (("graphs", "model", "sha256"), "abc", "sha256"),
    (("graphs", "model", "outputs"), [], "non-empty list"),
    (("golden", "sha256"), _DELETE, "missing field 'sha256'"),
    (("golden", "file"), _DELETE, "missing field 'file'"),
    (("golden", "file"), 7, "expected a non-empty string"),
    (("kind",), "ensemble", "kind"),
    (("opset",), "17", "expected an integer"),
    (("surprise",), 1, "unknown field 'surprise'"),
    (("notes",), "one note", "notes"),
]

BAD_SEQ2SEQ = [
    (("seq2seq", "states", 0, "size"), -1, "size"),
    (("seq2seq", "states", 0, "size"), 10**12, "out of range"),
    (("seq2seq", "states", 0, "size"), "16", "expected an integer"),
    (("seq2seq", "states", 0, "init"), "random", "init"),
    (("seq2seq", "states", 0, "encoder_output"), "no_such_output", "names no tensor"),
    (("seq2seq", "states", 0, "step_input"), "nothing", "names no tensor"),
    (("seq2seq", "feedback"), "beam", "feedback"),
    (("seq2seq", "start"), "middle", "start"),
    (("seq2seq", "steps"), 100_001, "out of range"),
    (("seq2seq", "steps"), 0, "out of range"),
    (("seq2seq", "step_graph"), "decoder", "names no graph"),
    (("seq2seq", "encoder_input"), "x", "names no tensor"),
    (("seq2seq",), _DELETE, "does not match its sections"),
]


@pytest.mark.parametrize(("where", "value", "words"), BAD, ids=[str(c[:2]) for c in BAD])
def test_bad_field_is_named(written, where, value, words):
    _, data = written["single"]
    with pytest.raises(BundleError) as raised:
        parse_manifest(_at(data, where, value), origin="m.json")
    message = str(raised.value)
    assert words in message and "\n" not in message and message.startswith("m.json: ")


@pytest.mark.parametrize(
    ("where", "value", "words"), BAD_SEQ2SEQ, ids=[str(c[:2]) for c in BAD_SEQ2SEQ]
)
def test_bad_seq2seq_field_is_named(written, where, value, words):
    _, data = written["seq2seq"]
    with pytest.raises(BundleError, match=words.replace("(", r"\(")):
        parse_manifest(_at(data, where, value))


def _paths(value, prefix=()):
    """Every path to a value inside decoded JSON."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), kind=st.sampled_from(["single", "seq2seq"]), value=JSON)
def test_any_damaged_field_reads_or_is_refused_in_one_line(written, data, kind, value):
    """Replace any one value of a real manifest by any JSON value: the manifest
    reads, or a BundleError of one line says why. Nothing else escapes."""
    _, manifest = written[kind]
    paths = [p for p in _paths(manifest) if p]
    where = data.draw(st.sampled_from(paths))
    try:
        parse_manifest(_at(manifest, where, value))
    except BundleError as exc:
        assert "\n" not in str(exc)


def test_a_keras_file_given_as_bundle_says_so(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK")
    with pytest.raises(BundleError, match="is a file, expected a bundle folder"):
        read_manifest(model)


def test_manifest_linked_out_of_the_bundle_is_refused(written, tmp_path):
    source, _ = written["single"]
    outside = tmp_path / "elsewhere.json"
    outside.write_text((source / MANIFEST_NAME).read_text())
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(outside, bundle / MANIFEST_NAME)
    with pytest.raises(BundleError, match="link out of the bundle"):
        read_manifest(bundle)


def test_huge_manifest_is_refused_before_reading(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with open(bundle / MANIFEST_NAME, "wb") as handle:
        handle.truncate(17 << 20)  # sparse: no disk used
    with pytest.raises(BundleError, match="larger than"):
        read_manifest(bundle)
