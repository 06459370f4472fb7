"""The manifest is validated against one schema when it is read: every field
that is missing, unknown, of the wrong type or out of range is refused with one
line naming it, never a traceback."""

import copy
import json
import os
import tempfile
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


# Raw JSON text no well-made manifest holds: integers of hundreds or thousands
# of digits (Python refuses to convert more than 4,300), floats beyond float64
# (read as infinities), numbers spelled as JavaScript does, lists nested
# deeper than any parser recurses, long strings.
HUGE_NUMBERS = st.one_of(
    st.tuples(st.sampled_from(["", "-"]), st.integers(300, 6000)).map(lambda s: s[0] + "7" * s[1]),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity"]),
    st.integers(310, 2000).map(lambda n: "1" + "0" * n + ".5"),
)
DEEP = st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth)
LONG = st.integers(257, 200_000).map(lambda n: json.dumps("n" * n))
HOSTILE_TEXT = st.one_of(HUGE_NUMBERS, DEEP, LONG)
_MARKER = "\x01hostile\x01"


def _text_with(data: dict, where: tuple, raw: str) -> str:
    """``data`` as JSON text, with the raw text ``raw`` at ``where``."""
    marked = json.dumps(_at(data, where, _MARKER))
    return marked.replace(json.dumps(_MARKER), raw)


def _text_with_duplicate(data: dict, where: tuple, raw: str) -> str:
    """``data`` as JSON text, the object at ``where`` holding one of its keys
    a second time, with the value ``raw``."""
    target = data
    for key in where:
        target = target[key]
    key = next(iter(target))
    pairs = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in target.items()]
    twice = "{" + ", ".join([*pairs, f"{json.dumps(key)}: {raw}"]) + "}"
    return _text_with(data, where, twice) if where else twice


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    kind=st.sampled_from(["single", "seq2seq"]),
    raw=st.one_of(HOSTILE_TEXT, JSON.map(json.dumps)),
    duplicate=st.booleans(),
)
def test_huge_deep_and_duplicate_values_are_refused_in_one_line(
    written, data, kind, raw, duplicate
):
    """Put hostile raw text anywhere in a real manifest, or a key twice in any
    of its objects: reading the file refuses it with one line (a duplicate
    key always), never a ValueError, OverflowError or RecursionError."""
    _, manifest = written[kind]
    if duplicate:
        objects = [p for p in _paths(manifest) if isinstance(_get(manifest, p), dict)]
        where = data.draw(st.sampled_from([p for p in objects if _get(manifest, p)]))
        text = _text_with_duplicate(manifest, where, raw)
    else:
        where = data.draw(st.sampled_from([p for p in _paths(manifest) if p]))
        text = _text_with(manifest, where, raw)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / MANIFEST_NAME).write_text(text, encoding="utf-8")
        try:
            read_manifest(Path(folder))
        except BundleError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 1000
        else:
            assert not duplicate, "a key given twice was read"


def _get(data, path: tuple):
    for key in path:
        data = data[key]
    return data


def test_a_key_given_twice_is_refused(written, tmp_path):
    _, manifest = written["single"]
    text = _text_with_duplicate(manifest, ("graphs", "model"), json.dumps("other.onnx"))
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BundleError, match="the key 'file' appears twice"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("9" * 5000, "unreadable manifest"),
        ("-1e400", "expected a finite number, got -inf"),
        ("4" * 401, "expected a finite number, got an integer of 401 digits"),
    ],
)
def test_huge_numbers_are_refused(written, tmp_path, raw, words):
    _, manifest = written["single"]
    text = _text_with(manifest, ("mask", "value"), raw)
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BundleError, match=words):
        read_manifest(tmp_path)
