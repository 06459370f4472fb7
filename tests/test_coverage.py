"""The support matrix: every configuration exports right or is refused with a reason."""

from pathlib import Path

import pytest

from parity.cli.model_forms import form_cases, run_form
from parity.cli.stream_matrix import run_stream_case, stream_cases
from parity.cli.support_matrix import Case, cases, run_case, write_matrix
from parity.runtime.errors import ParityError

CASES = {case.name: case for case in cases()}
REFUSED: dict[str, str] = {}
COVERAGE = Path(__file__).resolve().parents[1] / "COVERAGE.md"


@pytest.mark.parametrize("name", list(CASES))
def test_configuration(name, tmp_path):
    row = run_case(CASES[name], tmp_path)
    if name in REFUSED:
        assert row.result == "refused" and REFUSED[name] in row.reason
    else:
        assert row.result == "exports", row.reason
        assert row.max_abs < 1e-5


def test_masked_lstm_fuses_where_it_can_and_falls_back_elsewhere(tmp_path):
    assert run_case(CASES["LSTM return_sequences mask=none"], tmp_path).graph == "LSTM"
    masked = run_case(CASES["LSTM return_sequences mask=Masking"], tmp_path)
    assert masked.graph == "LSTM with sequence_lens"
    backwards = run_case(CASES["LSTM go_backwards mask=Masking"], tmp_path)
    assert backwards.graph == "Loop"


def test_gru_and_simple_rnn_are_fused_ops(tmp_path):
    gru = run_case(CASES["GRU(reset_after=False) return_sequences mask=Masking"], tmp_path)
    assert gru.graph == "GRU with sequence_lens"
    assert run_case(CASES["SimpleRNN activation=relu mask=none"], tmp_path).graph == "RNN as Scan"


def test_committed_matrix_lists_every_configuration():
    text = COVERAGE.read_text(encoding="utf-8")
    for case in CASES.values():
        assert f"| {case.layer} | {case.options} | {case.mask} |" in text, case.name
    for stream in STREAMS.values():
        assert f"| {stream.layers} | {stream.source} |" in text, stream.layers


STREAMS = {case.name: case for case in stream_cases()}


@pytest.mark.parametrize("name", list(STREAMS))
def test_streaming_configuration(name, tmp_path):
    case = STREAMS[name]
    row = run_stream_case(case, tmp_path)
    if case.source == "refused":
        assert row.result == "refused" and row.note.startswith("model "), row
    else:
        assert row.result == "exports", row.note
        assert row.max_abs < 1e-5 and row.invariance < 1e-5


def test_write_matrix_writes_the_rows_it_ran(tmp_path):
    case = CASES["LSTM last output mask=none"]
    (row,) = write_matrix(tmp_path / "matrix.md", "parity coverage", [case])
    assert row.result == "exports"
    text = (tmp_path / "matrix.md").read_text(encoding="utf-8")
    assert f"| {case.layer} | {case.options} | {case.mask} | exports | LSTM |" in text
    assert "    parity coverage\n" in text
    assert [path.name for path in tmp_path.iterdir()] == ["matrix.md"]  # no temporary left


def test_write_matrix_refuses_a_missing_folder_before_running_a_case(tmp_path):
    def never_built():
        raise AssertionError("a case ran")

    case = Case("LSTM", "never built", "none", never_built)
    for output, message in ((tmp_path / "no" / "m.md", "does not exist"), (tmp_path, "folder")):
        with pytest.raises(ParityError, match=message):
            write_matrix(output, "parity coverage", [case])
    assert list(tmp_path.iterdir()) == []


FORMS = {case.name: case for case in form_cases()}


@pytest.mark.parametrize("name", list(FORMS))
def test_model_form(name, tmp_path):
    row = run_form(FORMS[name], tmp_path)
    assert row.result == "exports", row.reason
    if FORMS[name].form == "seq2seq":
        assert row.kind.startswith("seq2seq (")
