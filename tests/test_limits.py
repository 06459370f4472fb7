"""Hostile or broken inputs are refused before anything is allocated, with one
line: array files that inflate or declare terabytes, values that overflow the
graph's dtype, token ids outside the vocabulary, horizons beyond the runtime's
limit, .keras files that declare huge layers or inflate, paths of the wrong type.

The hostile files are built here, small on disk: a zip member that inflates to
gigabytes is one compressed chunk repeated."""

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parity import runtime
from parity.exporter.load import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, load_keras
from parity.runtime.bundle_format.manifest import TensorSpec
from parity.runtime.errors import InputError, ParameterError, ParityError
from parity.runtime.generate import MAX_STEPS, check_steps
from parity.runtime.inputs import check_array
from parity.runtime.npy import MAX_ARRAY_BYTES, load_array, load_arrays
from tests import bundles

CHUNK = 16 * 2**20


def _member(prefix: bytes, fill_size: int = 0, fill: bytes = b"\0") -> tuple[bytes, int, int]:
    """A deflated zip member: ``prefix`` then ``fill_size`` bytes ``fill``, as
    (compressed data, crc32, uncompressed size). The fill is one compressed
    chunk repeated (each chunk ends in a full flush, so chunks are independent)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = [compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(prefix)
    chunk = fill * CHUNK
    count, rest = divmod(fill_size, CHUNK)
    if count:
        data.append((compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)) * count)
        for _ in range(count):
            crc = zlib.crc32(chunk, crc)
    data.append(compressor.compress(chunk[:rest]) + compressor.flush())
    return b"".join(data), zlib.crc32(chunk[:rest], crc), len(prefix) + fill_size


def _write_zip(path, members: dict[str, tuple[bytes, int, int]]):
    """A zip archive of deflated ``members`` (see :func:`_member`), written by hand."""
    local, central = bytearray(), bytearray()
    for name, (data, crc, size) in members.items():
        encoded = name.encode()
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
            len(encoded), 0, 0, 0, 0, 0, len(local),
        )  # fmt: skip
        central += encoded
        local += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
        )
        local += encoded + data
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0
    )
    path.write_bytes(bytes(local + central + end))
    return path


def _npy_header(shape, descr="<f4") -> bytes:
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    return stream.getvalue()


def _one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


# --- .npy / .npz -------------------------------------------------------------------


def test_a_small_member_built_by_hand_loads(tmp_path):
    """The hand-made archive is a real .npz: what the hostile ones are made of."""
    path = _write_zip(tmp_path / "ok.npz", {"x.npy": _member(_npy_header((3, 1000)), 12_000)})
    np.testing.assert_array_equal(load_arrays(path)["x"], np.zeros((3, 1000), np.float32))


def test_npz_that_inflates_to_gigabytes_is_refused_before_reading(tmp_path):
    size = 600_000_000 * 4  # 2.4 GB of float32 zeros, about 2.3 MB compressed
    path = _write_zip(tmp_path / "bomb.npz", {"x.npy": _member(_npy_header((600_000_000,)), size)})
    assert path.stat().st_size < 3_000_000
    with pytest.raises(InputError) as caught:
        load_arrays(path)
    line = _one_line(caught.value)
    assert str(path) in line and "array 'x'" in line
    assert "2.2 GiB, beyond the limit of 2.0 GiB" in line and "PARITY_MAX_ARRAY_BYTES" in line


def test_npy_declaring_terabytes_is_refused(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((1_000_000, 500_000)) + b"\0" * 64)
    with pytest.raises(InputError) as caught:
        load_array(path)
    assert "1.8 TiB, beyond the limit" in _one_line(caught.value)


def test_npz_arrays_together_beyond_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PARITY_MAX_ARRAY_BYTES", "5000")
    np.savez(tmp_path / "two.npz", a=np.zeros(1000, np.float32), b=np.zeros(1000, np.float32))
    with pytest.raises(InputError, match="together take 7.8 KiB, beyond the limit of 4.9 KiB"):
        load_arrays(tmp_path / "two.npz")


def test_the_array_limit_follows_the_environment(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((4, 100), np.float32))
    monkeypatch.setenv("PARITY_MAX_ARRAY_BYTES", "1000")
    with pytest.raises(InputError, match="1.6 KiB, beyond the limit of 1000 bytes"):
        load_array(tmp_path / "x.npy")
    monkeypatch.setenv("PARITY_MAX_ARRAY_BYTES", "1600")
    assert load_array(tmp_path / "x.npy").shape == (4, 100)
    monkeypatch.setenv("PARITY_MAX_ARRAY_BYTES", "2GB")
    with pytest.raises(ParameterError, match="PARITY_MAX_ARRAY_BYTES: must be a whole number"):
        load_array(tmp_path / "x.npy")
    assert MAX_ARRAY_BYTES == 2 * 2**30


def test_declared_shape_must_match_the_data(tmp_path):
    short = tmp_path / "short.npy"
    short.write_bytes(_npy_header((10,)) + b"\0" * 8)
    with pytest.raises(InputError, match=r"declares shape \(10,\) of float32 \(40 bytes\), but"):
        load_array(short)
    # a zip member whose declared uncompressed size holds less than its header declares
    path = _write_zip(tmp_path / "lying.npz", {"x.npy": _member(_npy_header((1000, 1000)), 400)})
    with pytest.raises(InputError, match="array 'x' declares shape .* holds 400 bytes"):
        load_arrays(path)


def test_a_header_that_declares_its_own_length_huge_is_refused(tmp_path):
    """numpy reads as many header bytes as the length field says before it checks them."""
    length = 2**28  # numpy would read (and keep) 256 MiB of header text
    member = _member(b"\x93NUMPY\x02\x00" + struct.pack("<I", length), length, b" ")
    path = _write_zip(tmp_path / "header.npz", {"x.npy": member})
    with pytest.raises(InputError, match="array 'x': its header declares 268435456 bytes"):
        load_arrays(path)
    npy = tmp_path / "header.npy"
    npy.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b" " * 100)
    with pytest.raises(InputError, match="its header declares 2147483648 bytes"):
        load_array(npy)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (np.array([1, None], object), "Python objects (pickles"),
        (np.zeros(2, [("a", "<f4"), ("b", "<i4")]), "records"),
        (np.array(["ab", "c"]), "strings"),
        (np.array([b"ab"]), "byte strings"),
        (np.array(["2020-01-01"], "datetime64[D]"), "dates"),
    ],
)
def test_arrays_that_are_not_numbers_are_refused(tmp_path, value, what):
    np.save(tmp_path / "x.npy", value, allow_pickle=True)
    with pytest.raises(InputError) as caught:
        load_array(tmp_path / "x.npy")
    line = _one_line(caught.value)
    assert f"{tmp_path / 'x.npy'}: the array holds {what}" in line
    np.savez(tmp_path / "x.npz", ok=np.ones(3), bad=value)
    with pytest.raises(InputError) as caught:
        load_arrays(tmp_path / "x.npz")
    assert f"array 'bad' holds {what}" in _one_line(caught.value)


def test_a_0d_array_is_refused_where_an_input_array_is_expected(tmp_path):
    np.save(tmp_path / "x.npy", np.float32(3))
    with pytest.raises(InputError, match="the array is 0-d"):
        load_array(tmp_path / "x.npy")
    np.savez(tmp_path / "x.npz", encoder_input=np.float32(3))
    with pytest.raises(InputError, match="array 'encoder_input' is 0-d"):
        load_arrays(tmp_path / "x.npz")


def test_a_member_that_is_not_an_array_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(InputError, match="member 'notes.txt' is not a .npy array"):
        load_arrays(tmp_path / "x.npz")


def test_generate_cli_refuses_a_bomb_in_one_line(tmp_path):
    from click.testing import CliRunner

    from parity.cli.app import cli

    bundles.write_seq2seq(tmp_path / "toy")
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((1_000_000, 500_000, 2)) + b"\0" * 64)
    args = ["generate", str(tmp_path / "toy"), "--input", str(path), "-o", str(tmp_path / "y.npy")]
    result = CliRunner().invoke(cli, [*args, "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "beyond the limit" in result.output and "Traceback" not in result.output


# --- input values ------------------------------------------------------------------

FEATURES = TensorSpec("x", "float32", ("batch", 3))
TOKENS = TensorSpec("ids", "int64", ("batch", "time"), {"kind": "tokens", "vocab": 10})
FLOAT_TOKENS = TensorSpec("ids", "float32", ("batch", "time"), {"kind": "tokens", "vocab": 10})


def test_float64_beyond_float32_is_refused_not_turned_into_inf():
    with pytest.raises(InputError) as caught:
        check_array(FEATURES, np.array([[1.0, 2.0, 1e39]]))
    line = _one_line(caught.value)
    assert "input 'x': value 1e+39 at index (0, 2) overflows float32" in line
    with pytest.raises(InputError, match="holds NaN or Inf"):
        check_array(FEATURES, np.array([[1.0, np.inf, 0.0]]))
    assert check_array(FEATURES, np.array([[1.0, 2.0, 3e38]])).dtype == np.float32


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (TOKENS, [[1, -1]], "'ids': token id -1 at index (0, 1) is outside the vocabulary [0, 10)"),
        (TOKENS, [[10, 1]], "'ids': token id 10 at index (0, 0) is outside the vocabulary [0, 10)"),
        (
            FLOAT_TOKENS,
            [[1.0, 2.5]],
            "id 2.5 at index (0, 1) is not a whole number (vocabulary of 10 ",
        ),
        (FLOAT_TOKENS, [[1.0, 12.0]], "id 12.0 at index (0, 1) is outside the vocabulary [0, 10)"),
    ],
)
def test_token_ids_outside_the_vocabulary_are_refused(spec, value, message):
    with pytest.raises(InputError) as caught:
        check_array(spec, np.array(value))
    assert message in _one_line(caught.value)
    np.testing.assert_array_equal(check_array(spec, np.array([[0, 9]], spec.dtype)), [[0, 9]])


def test_a_negative_token_id_no_longer_reaches_onnx_runtime(tmp_path):
    """ONNX Runtime's Gather reads a negative id from the table's end, silently."""
    bundles.write_single(tmp_path / "single")
    bundle = runtime.load_bundle(tmp_path / "single", device="cpu")
    x = np.ones((1, 2, 3), np.float32)
    bundle.run({"x": x, "ids": np.array([[0, 9]])})
    with pytest.raises(InputError, match="token id -3 at index"):
        bundle.run({"x": x, "ids": np.array([[0, -3]])})


SPECS = [
    FEATURES,
    TensorSpec("x", "float16", ("batch", "time")),
    TensorSpec("x", "int32", ("batch",)),
    TOKENS,
    FLOAT_TOKENS,
]
ANY_DTYPE = st.one_of(
    hnp.integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(),
    hnp.unicode_string_dtypes(),
    hnp.array_dtypes(allow_subarrays=True),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_array_passes_or_raises_input_error(data):
    """Arrays of any dtype, shape (mostly the spec's rank) and values."""
    spec = data.draw(st.sampled_from(SPECS))
    fitting = hnp.array_shapes(min_dims=spec.rank, max_dims=spec.rank, min_side=1, max_side=4)
    fitting = fitting.map(lambda shape: (*shape[:-1], 3) if spec is FEATURES else shape)
    anything = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    shape = data.draw(st.one_of(fitting, anything))
    value = data.draw(hnp.arrays(data.draw(ANY_DTYPE), shape))
    try:
        checked = check_array(spec, value)
    except InputError as error:
        _one_line(error)
        return
    assert checked.dtype == np.dtype(spec.dtype) and checked.shape == value.shape
    if checked.dtype.kind == "f":
        assert np.isfinite(checked).all()
    if spec.domain:
        assert ((checked >= 0) & (checked < 10) & (checked == np.floor(checked))).all()


def test_what_is_not_an_array_is_refused():
    with pytest.raises(InputError, match="input 'x': not an array"):
        check_array(FEATURES, [[1.0, 2.0, 3.0], [4.0]])


# --- steps -------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -1, MAX_STEPS + 1, 10**9, 2.5, True, "3"])
def test_check_steps_names_the_parameter(steps):
    with pytest.raises(ParameterError) as caught:
        check_steps(steps)
    assert caught.value.parameter == "steps"
    assert _one_line(caught.value).startswith("steps: ")
    assert check_steps(np.int64(MAX_STEPS)) == MAX_STEPS


@pytest.mark.parametrize("steps", [MAX_STEPS + 1, 10**9, 0])
def test_export_refuses_a_horizon_the_runtime_refuses_before_building(steps, tmp_path):
    from parity.exporter.seq2seq_bundle import export_seq2seq

    # no model at all: the horizon is checked before the model is looked at
    with pytest.raises(ParameterError, match="^steps: "):
        export_seq2seq(None, tmp_path / "b", source_info={}, steps=steps)
    assert not (tmp_path / "b").exists()


# --- .keras ------------------------------------------------------------------------


def _lstm_config(units: int, name: str = "lstm", class_name: str = "LSTM") -> dict:
    """A Keras 3 config.json of Input((5, 3)) -> LSTM(units), as Keras writes it."""
    tensor = {"shape": [None, 5, 3], "dtype": "float32", "keras_history": ["x", 0, 0]}
    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "name": "x",
         "config": {"batch_shape": [None, 5, 3], "dtype": "float32", "name": "x"},
         "registered_name": None, "inbound_nodes": []},
        {"module": "keras.layers", "class_name": class_name, "name": name,
         "config": {"name": name, "units": units, "dtype": "float32"},
         "registered_name": None, "build_config": {"input_shape": [None, 5, 3]},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": tensor}],
                            "kwargs": {}}]},
    ]  # fmt: skip
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "model",
            "trainable": True,
            "layers": layers,
            "input_layers": [["x", 0, 0]],
            "output_layers": [[name, 0, 0]],
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
    }


def _keras_file(path, config: dict | tuple, weights: tuple[bytes, int, int] | None = None):
    config = config if isinstance(config, tuple) else _member(json.dumps(config).encode())
    members = {"metadata.json": _member(b'{"keras_version": "3.15.1"}'), "config.json": config}
    members["model.weights.h5"] = weights or _member(b"")
    return _write_zip(path, members)


def test_keras_file_declaring_a_huge_lstm_is_refused_before_keras(tmp_path):
    """LSTM(units=20000) in a 1 KB file: Keras would take over 20 GB to build it."""
    path = _keras_file(tmp_path / "huge.keras", _lstm_config(20000))
    assert path.stat().st_size < 2000
    with pytest.raises(ParityError) as caught:
        load_keras(path)
    line = _one_line(caught.value)
    assert "LSTM 'lstm' alone 6.0 GiB" in line and "beyond the limit of 4.0 GiB" in line
    assert "PARITY_MAX_MODEL_BYTES" in line
    assert MAX_MODEL_BYTES == 4 * 2**30


@pytest.mark.parametrize(("class_name", "units"), [("GRU", 20000), ("Dense", 300_000_000)])
def test_other_huge_layers_are_refused(tmp_path, class_name, units):
    path = _keras_file(tmp_path / "huge.keras", _lstm_config(units, class_name=class_name))
    with pytest.raises(ParityError, match=f"{class_name} 'lstm' alone .* beyond the limit"):
        load_keras(path)


def test_a_small_hand_made_keras_file_passes_the_limits(tmp_path, monkeypatch):
    """The same file with 4 units reaches Keras (which wants real weights);
    a lower limit refuses it."""
    path = _keras_file(tmp_path / "small.keras", _lstm_config(4))
    with pytest.raises(ParityError) as caught:
        load_keras(path)
    assert "cannot load Keras model" in _one_line(caught.value)
    monkeypatch.setenv("PARITY_MAX_MODEL_BYTES", "500")
    with pytest.raises(ParityError, match="declares about 512 bytes of weights"):
        load_keras(path)


def test_config_json_bomb_is_refused(tmp_path):
    """200 MB of spaces compress to about 200 KB."""
    bomb = _member(b"{", 200 * 2**20, b" ")
    path = _keras_file(tmp_path / "bomb.keras", bomb)
    assert path.stat().st_size < 400_000
    with pytest.raises(ParityError) as caught:
        load_keras(path)
    line = _one_line(caught.value)
    assert "config.json takes 200.0 MiB uncompressed, beyond the limit of 64.0 MiB" in line
    assert MAX_CONFIG_BYTES == 64 * 2**20


def test_an_archive_that_inflates_beyond_the_model_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PARITY_MAX_MODEL_BYTES", str(2**20))
    path = _keras_file(tmp_path / "m.keras", _lstm_config(4), weights=_member(b"", 3 * 2**20))
    with pytest.raises(ParityError, match="archive takes 3.0 MiB uncompressed, beyond 2 x"):
        load_keras(path)


def test_a_config_that_is_not_json_is_refused(tmp_path):
    path = _keras_file(tmp_path / "m.keras", _member(b"{not json"))
    with pytest.raises(ParityError, match="config.json is not valid JSON"):
        load_keras(path)
    deep = _keras_file(tmp_path / "deep.keras", _member(b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(ParityError, match="config.json is not valid JSON"):
        load_keras(deep)


def test_only_a_real_lambda_is_blamed(tmp_path):
    """A layer named like a Lambda, of a class Keras cannot find: Keras' reason."""
    config = _lstm_config(4, name="my_lambda", class_name="Scale")
    config["config"]["layers"][1]["module"] = "my_module"
    path = _keras_file(tmp_path / "custom.keras", config)
    with pytest.raises(ParityError) as caught:
        load_keras(path)
    line = _one_line(caught.value)
    assert "cannot load Keras model" in line and "--unsafe" not in line


def test_unsafe_gives_keras_own_reason(tmp_path):
    """Keras 3 cannot reload a Lambda over a list even with safe_mode off."""
    import keras

    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    joined = keras.layers.Lambda(lambda t: keras.ops.concatenate(t, axis=1), name="join")([a, b])
    keras.Model([a, b], joined).save(tmp_path / "join.keras")
    with pytest.raises(ParityError, match="Lambda layer 'join' runs Python code.*pass --unsafe"):
        load_keras(tmp_path / "join.keras")
    with pytest.raises(ParityError) as caught:
        load_keras(tmp_path / "join.keras", unsafe=True)
    line = _one_line(caught.value)
    assert "could not automatically infer the shape" in line and "--unsafe" not in line


# --- paths -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [None, 3, b"x.npy", "", "x\0y"])
@pytest.mark.parametrize("load", [load_array, load_arrays, load_keras, runtime.load_bundle])
def test_a_path_of_the_wrong_type_is_a_parameter_error(load, path):
    with pytest.raises(ParameterError) as caught:
        load(path)
    assert caught.value.parameter == "path"
    _one_line(caught.value)
