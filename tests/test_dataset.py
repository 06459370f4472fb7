"""``parity verify MODEL BUNDLE --data PATH``: every row of a dataset, in
process and on Ray; the report, the failing rows' file and bad data."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from parity.cli.app import cli
from parity.runtime.errors import InputError, ParityError
from parity.verify.check import DATASET_ROW
from parity.verify.dataset import check_dataset
from parity.verify.options import VerifyOptions
from parity.verify.row_errors import compare_output
from parity.verify.shards import list_shards, plan_units, read_batches
from parity.verify.tolerance import Tolerance, TolerancePolicy

ROWS = 60


@pytest.fixture(scope="module")
def masked(trained_zoo, tmp_path_factory):
    """The masked classifier, exported, and its held-out rows in three
    ``.npz`` shards (one compressed) and in a Parquet file of two row groups."""
    from parity.exporter import export_keras

    folder = tmp_path_factory.mktemp("masked")
    trained = trained_zoo["masked_lstm"]
    export_keras(trained.path, folder / "bundle")
    rows = trained.entry.make_data("tiny", ROWS, 7).inputs["sequence"]
    shards = folder / "shards"
    shards.mkdir()
    np.savez(shards / "part-0.npz", sequence=rows[:25], labels=np.zeros(25))
    np.savez_compressed(shards / "part-1.npz", sequence=rows[25:50])
    np.savez(shards / "part-2.npz", sequence=rows[50:])
    table = pa.table({"sequence": pa.array(rows.tolist())})
    pq.write_table(table, folder / "rows.parquet", row_group_size=32)
    return trained.path, folder / "bundle", shards, folder / "rows.parquet", rows


def test_every_row_of_npz_shards_and_parquet_passes_with_the_same_errors(masked):
    model, bundle, shards, parquet, rows = masked
    lines = []
    report = check_dataset(bundle, model, shards, batch_size=16, progress=lines.append)
    assert report.passed and report.rows == ROWS and report.shards == 3
    (probs,) = report.outputs
    assert probs.rows_failed == 0 and 0 < probs.p50 <= probs.p99 <= probs.max_abs < 1e-5
    assert probs.agreement.per == "row" and probs.agreement.agree == probs.agreement.total == ROWS
    assert any("rows/s" in line and "left" in line for line in lines), lines

    again = check_dataset(bundle, model, parquet, batch_size=16)
    assert again.rows == ROWS and again.passed
    # the same rows, cut at other places (row groups): the same errors within float rounding
    np.testing.assert_allclose(again.row_max_abs["probs"], report.row_max_abs["probs"], atol=1e-7)


def test_a_tight_tolerance_fails_rows_and_writes_them_for_verify_inputs(masked, tmp_path):
    model, bundle, shards, _, rows = masked
    report_path = tmp_path / "report.json"
    args = ["verify", str(model), str(bundle), "--data", str(shards), "--batch-size", "16"]
    tight = ["--atol", "1e-9", "--rtol", "0", "--device", "cpu", "-q"]
    result = CliRunner().invoke(cli, [*args, *tight, "--json", str(report_path)])
    assert result.exit_code == 1, result.output
    report = json.loads(report_path.read_text())
    assert report["kind"] == "dataset" and report["passed"] is False
    assert 0 < report["rows_failed"] <= ROWS and len(report["worst"]) == min(
        20, report["rows_failed"]
    )
    worst = report["worst"][0]
    assert worst["ratio"] > 1 and worst["output"] == "probs"
    assert [w["ratio"] for w in report["worst"]] == sorted(
        (w["ratio"] for w in report["worst"]), reverse=True
    )

    failures = tmp_path / "report.failures.npz"
    assert report["failures_file"] == str(failures)
    with np.load(failures) as saved:
        indices = saved[DATASET_ROW]
        assert list(indices) == [w["row"] for w in report["worst"]]
        np.testing.assert_array_equal(saved["sequence"], rows[indices])
    rerun = CliRunner().invoke(
        cli, ["verify", str(model), str(bundle), "--inputs", str(failures), *tight]
    )
    assert rerun.exit_code == 1 and "on your inputs" in rerun.output


def test_ray_gives_the_same_results_row_for_row(masked):
    ray = pytest.importorskip("ray")
    model, bundle, shards, _, _ = masked
    local = check_dataset(bundle, model, shards, VerifyOptions(policy=_tight()), batch_size=8)
    on_ray = check_dataset(
        bundle, model, shards, VerifyOptions(policy=_tight()), batch_size=8, engine="ray", workers=2
    )
    assert not ray.is_initialized()  # started and stopped by check_dataset
    assert on_ray.engine == "ray" and on_ray.workers == 2
    np.testing.assert_array_equal(on_ray.row_max_abs["probs"], local.row_max_abs["probs"])
    assert on_ray.worst == local.worst and on_ray.outputs == local.outputs
    assert on_ray.rows_failed == local.rows_failed > 0


def _tight() -> TolerancePolicy:
    return TolerancePolicy(Tolerance(1e-9, 0.0))


def test_bad_data_exits_2_naming_the_shard_and_row(masked, tmp_path):
    model, bundle, _, _, rows = masked
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "a.npz", sequence=rows[:10])
    nan = rows[10:20].copy()
    nan[3, 2, 1] = np.nan
    np.savez(bad / "b.npz", sequence=nan)
    report = tmp_path / "r.json"
    args = ["verify", str(model), str(bad), "--data"]
    cases = {
        "b.npz: row 3 (dataset row 13)": bad,
        "no array named 'sequence'": _npz(tmp_path / "missing.npz", values=rows[:4]),
        "axis 2 has size 5": _npz(tmp_path / "shape.npz", sequence=rows[:4, :, :5]),
        "unreadable numpy file": _garbage(tmp_path / "garbage.npz"),
        "complex numbers": _npz(tmp_path / "complex.npz", sequence=rows[:4].astype(np.complex64)),
    }
    for expected, data in cases.items():
        args = ["verify", str(model), str(masked[1]), "--data", str(data), "--json", str(report)]
        result = CliRunner().invoke(cli, [*args, "-q", "--batch-size", "4"])
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1, result.output
        assert expected in errors[0] and str(data.name) in errors[0], errors
        assert not report.exists() and not (tmp_path / "r.failures.npz").exists()
    # --inputs reads .npz files by the same rule as --data
    args = ["verify", str(model), str(masked[1]), "--inputs", str(tmp_path / "complex.npz")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "complex numbers" in result.output, result.output


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _garbage(path):
    path.write_bytes(b"PK\x03\x04 not a zip file")
    return path


def test_token_ids_beyond_the_vocabulary_are_named(tmp_path):
    import keras

    from parity.exporter import export_keras
    from parity.files import save_model as save

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    x = keras.layers.LSTM(4)(x)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    path = save(keras.Model(tokens, probs), tmp_path / "tokens.keras")
    export_keras(path, tmp_path / "bundle")
    ids = np.random.default_rng(0).integers(1, 10, (12, 6))
    ids[:, 4:] = 0  # post-padding
    np.savez(tmp_path / "ok.npz", tokens=ids)
    report = check_dataset(tmp_path / "bundle", path, tmp_path / "ok.npz", batch_size=5)
    assert report.passed and report.outputs[0].agreement.agree == 12
    ids[7, 1] = 10
    np.savez(tmp_path / "bad.npz", tokens=ids)
    with pytest.raises(
        InputError, match=r"bad.npz: row 7 \(dataset row 7\).*outside the vocabulary"
    ):
        check_dataset(tmp_path / "bundle", path, tmp_path / "bad.npz", batch_size=5)
    ids[7, 1] = 5  # row 8 pre-padded: the fused graph needs post-padding
    ids[8, :2] = 0
    np.savez(tmp_path / "bad.npz", tokens=ids)
    with pytest.raises(
        InputError, match=r"bad.npz: row 8 \(dataset row 8\): input 'tokens': the row has a real"
    ):
        check_dataset(tmp_path / "bundle", path, tmp_path / "bad.npz", batch_size=5)


def test_seq2seq_generates_from_every_row(tmp_path):
    from parity.exporter import export_keras
    from parity.files import save_model as save
    from tests import seq2seq_models

    path = save(seq2seq_models.sine_like(), tmp_path / "sine.keras")
    export_keras(path, tmp_path / "bundle", steps=10)
    rng = np.random.default_rng(3)
    inputs = {"encoder_input": rng.normal(size=(12, 9, 5)).astype(np.float32)}
    np.savez(tmp_path / "rows.npz", **inputs, decoder_input=np.zeros((12, 10, 5)))
    report = check_dataset(tmp_path / "bundle", path, tmp_path / "rows.npz", batch_size=5)
    assert report.passed and report.rows == 12
    assert report.generation == {"steps": 10, "path": "loop graph"}
    (forecast,) = report.outputs
    assert forecast.kind == "generation" and forecast.agreement is None  # values, not tokens
    short = check_dataset(tmp_path / "bundle", path, tmp_path / "rows.npz", VerifyOptions(steps=3))
    assert short.generation["steps"] == 3 and short.passed


def test_token_generations_agree_step_by_step(tmp_path):
    from parity.exporter import export_keras
    from parity.files import save_model as save
    from tests import seq2seq_models

    path = save(seq2seq_models.token_lstm(), tmp_path / "tokens.keras")
    export_keras(path, tmp_path / "bundle", steps=6)
    source = np.random.default_rng(0).normal(size=(9, 7, 6)).astype(np.float32)
    np.savez(tmp_path / "rows.npz", source=source)
    report = check_dataset(tmp_path / "bundle", path, tmp_path / "rows.npz", batch_size=4)
    (tokens,) = report.outputs
    assert report.passed and tokens.agreement.per == "step"
    assert tokens.agreement.agree == tokens.agreement.total == 9 * 6


def test_row_errors_under_growing_tolerance_and_first_divergent_step():
    expected = np.zeros((2, 4, 3), np.float32)
    expected[..., 0] = 1.0
    actual = expected.copy()
    actual[1, 2] = [0.0, 1.0, 0.0]  # row 1 picks another token at step 2
    actual[0, 3, 0] += 1.2e-5  # within the tolerance grown at step 3, not at step 0
    rows = compare_output("y", expected, actual, Tolerance(1e-5, 0.0), steps=True, growth=0.1).rows
    assert rows.ratio[0] <= 1 < rows.ratio[1]
    assert list(rows.first_failing_step) == [-1, 2]
    assert list(rows.agree) == [4, 3] and rows.positions == 4
    assert list(rows.first_divergent_step) == [-1, 2]
    flat = compare_output("y", expected, actual, Tolerance(1e-5, 0.0), steps=True).rows
    assert flat.ratio[0] > 1 and flat.first_failing_step[0] == 3


def test_npz_stored_and_compressed_and_ragged_parquet_read_the_same_rows(tmp_path):
    values = np.arange(7 * 3 * 2, dtype=np.float32).reshape(7, 3, 2)
    np.savez(tmp_path / "stored.npz", x=values)
    np.savez_compressed(tmp_path / "compressed.npz", x=np.asfortranarray(values))
    for name in ("stored.npz", "compressed.npz"):
        shards = list_shards(tmp_path / name, ["x"])
        batches = [b for u in plan_units(shards, 3) for b in read_batches(u, ["x"], 3)]
        assert [b.rows for b in batches] == [3, 3, 1] and [b.start for b in batches] == [0, 3, 6]
        np.testing.assert_array_equal(np.concatenate([b.arrays["x"] for b in batches]), values)
    ragged = [[[1.0], [2.0]], [[3.0]], [[4.0]], [[5.0], [6.0]]]
    pq.write_table(pa.table({"x": ragged}), tmp_path / "ragged.parquet")
    shards = list_shards(tmp_path / "ragged.parquet", ["x"])
    batches = [b for u in plan_units(shards, 4) for b in read_batches(u, ["x"], 4)]
    assert [(b.start, b.arrays["x"].shape) for b in batches] == [
        (0, (1, 2, 1)),
        (1, (2, 1, 1)),
        (3, (1, 2, 1)),
    ]
    pq.write_table(pa.table({"x": [[[1.0], [2.0, 3.0]]]}), tmp_path / "bad.parquet")
    with pytest.raises(
        ParityError, match=r"bad.parquet: row 0 \(dataset row 0\): column 'x' is ragged"
    ):
        list(read_batches(plan_units(list_shards(tmp_path / "bad.parquet", ["x"]), 4)[0], ["x"], 4))


def test_many_one_row_shards_run_as_full_batches_each_row_named_by_its_shard(tmp_path):
    """50 one-row shards (one of another time length) at 16 rows a batch: a
    handful of batches, not 50; every row keeps its shard and its row."""
    for index in range(50):
        time = 5 if index == 20 else 4
        np.savez(tmp_path / f"s{index:02d}.npz", x=np.full((1, time, 3), index, np.float32))
    shards = list_shards(tmp_path, ["x"])
    batches = [b for u in plan_units(shards, 16) for b in read_batches(u, ["x"], 16)]
    assert len(batches) <= 6 and all(b.rows <= 16 for b in batches)
    assert [b.start for b in batches] == list(np.cumsum([0] + [b.rows for b in batches])[:-1])
    for batch in batches:
        for row in range(batch.rows):
            value = int(batch.arrays["x"][row, 0, 0])
            assert batch.origin(row) == (str(tmp_path / f"s{value:02d}.npz"), 0)
            assert batch.start + row == value


def test_a_parquet_row_group_is_read_a_batch_at_a_time(tmp_path):
    """20,000 rows of 50 zeros in one row group: 4 KB on disk, 8 MB decoded.
    Reading it 100 rows at a time, Arrow never holds more than a few batches."""
    rows = 20_000
    table = pa.table({"x": pa.array(np.zeros((rows, 50)).tolist())})
    pq.write_table(table, tmp_path / "zeros.parquet", row_group_size=rows)
    del table
    shards = list_shards(tmp_path / "zeros.parquet", ["x"])
    peak, seen = 0, 0
    for unit in plan_units(shards, 100):
        for batch in read_batches(unit, ["x"], 100):
            peak = max(peak, pa.total_allocated_bytes())
            seen += batch.rows
    assert seen == rows
    assert peak < rows * 50 * 8 // 8
