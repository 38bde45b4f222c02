"""Training data and benchmark files that are not what they claim: non-UTF-8 bytes, BOMs, ragged
or unterminated CSV, invalid JSON. Each is an error naming file:line, or (training data with
`data.skip_bad_records`) a skipped record counted in the stage's data stats."""
import collections
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medjax.data.config import data_config
from medjax.data.pipeline import build_train_iterator
from medjax.data.readers import read_rows
from medjax.data.records import DataError
from medjax.eval.question import BenchmarkFormatError
from medjax.eval.readers.exam_csv import read_exam_csv
from medjax.eval.readers.medmcqa import read_medmcqa
from medjax.eval.readers.medqa import read_medqa
from medjax.eval.readers.pubmedqa import read_pqal
from test_data_fixtures import llama2_tokenizer  # noqa: F401  (fixture)

LATIN1 = "café".encode("latin-1")  # b"caf\xe9": not UTF-8
BOM = b"\xef\xbb\xbf"


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _rows(path, **kwargs):
    return [(row, origin.rsplit("/", 1)[-1]) for row, origin in read_rows(path, **kwargs)]


@pytest.mark.parametrize("name,data,line", [
    ("d.jsonl", b'{"text": "ok"}\n\n{"text": "' + LATIN1 + b'"}\n', 3),
    ("d.json", b'[{"text": "ok"},\n {"text": "' + LATIN1 + b'"}]\n', 2),
    ("d.csv", b'text,id\nok,1\n"multi\nline",2\n' + LATIN1 + b",3\n", 5),
    ("d.txt", b"para one\n\npara two\nhas " + LATIN1 + b"\n", 4),
], ids=["jsonl", "json", "csv", "txt"])
def test_non_utf8_bytes_name_file_and_line(tmp_path, name, data, line):
    path = _write(tmp_path / name, data)
    with pytest.raises(DataError, match=rf"{name}:{line}: not valid UTF-8 \(byte 0xe9\)"):
        list(read_rows(path))


def test_non_utf8_records_are_skipped_and_counted(tmp_path):
    counts = collections.Counter()
    path = _write(tmp_path / "d.jsonl", b'{"text": "ok"}\n{"text": "' + LATIN1 + b'"}\n{"text": "fine"}\n')
    assert [o for _, o in _rows(path, skip_bad=True, counts=counts)] == ["d.jsonl:1", "d.jsonl:3"]
    assert counts["bad_records"] == 1
    path = _write(tmp_path / "d.txt", b"one\n\n" + LATIN1 + b"\nsame paragraph\n\nthree\n")
    assert [r["text"] for r, _ in _rows(path, skip_bad=True, counts=counts)] == ["one", "three"]
    assert counts["bad_records"] == 2


@pytest.mark.parametrize("name,data", [
    ("d.jsonl", b'{"text": "a"}\n'), ("d.json", b'[{"text": "a"}]'), ("d.csv", b"text\na\n"), ("d.txt", b"a\n"),
], ids=["jsonl", "json", "csv", "txt"])
def test_a_utf8_bom_is_accepted(tmp_path, name, data):
    path = _write(tmp_path / name, BOM + data)
    assert [row["text"] for row, _ in read_rows(path)] == ["a"]


def test_utf16_is_named_as_such(tmp_path):
    path = _write(tmp_path / "d.jsonl", '{"text": "a"}\n'.encode("utf-16"))
    with pytest.raises(DataError, match=r"d\.jsonl:1: UTF-16 text"):
        list(read_rows(path))


def test_csv_rows_with_missing_or_extra_cells(tmp_path):
    path = _write(tmp_path / "d.csv", b'instruction,output\n"q\n(two lines)",a\nonly one cell\nq,a,extra\nq4,a4\n')
    with pytest.raises(DataError, match=r"d\.csv:4: 1 cells, the header has 2"):
        list(read_rows(path))
    counts = collections.Counter()
    rows = _rows(path, skip_bad=True, counts=counts)
    assert [o for _, o in rows] == ["d.csv:2", "d.csv:6"]  # a row's origin is its first line
    assert counts["bad_records"] == 2


def test_csv_unterminated_quote_is_an_error_not_a_swallowed_file(tmp_path):
    path = _write(tmp_path / "d.csv", b'text,id\nok,1\n"never closed,2\nlost,3\nlost,4\n')
    with pytest.raises(DataError, match=r"d\.csv:3: malformed CSV row: .*unterminated quote"):
        list(read_rows(path, skip_bad=True))


def test_csv_header_with_repeated_columns(tmp_path):
    path = _write(tmp_path / "d.csv", b"text,text\na,b\n")
    with pytest.raises(DataError, match=r"d\.csv:1: the header repeats the column\(s\) \['text'\]"):
        list(read_rows(path))


@pytest.mark.parametrize("line", [b"[" * 100_000, b'{"text": ' + b"9" * 5000 + b"}"], ids=["deep", "long_int"])
def test_json_the_parser_cannot_take_names_the_line(tmp_path, line):
    path = _write(tmp_path / "d.jsonl", b'{"text": "ok"}\n' + line + b"\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        list(read_rows(path))


def test_corrupt_parquet_names_the_file(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), good)
    path = _write(tmp_path / "d.parquet", good.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"d\.parquet: not a readable parquet file"):
        list(read_rows(path))


def test_bad_records_reach_the_stage_data_stats(tmp_path, llama2_tokenizer):  # noqa: F811
    path = _write(tmp_path / "d.csv", b"text\nfirst row\n" + LATIN1 + b"\nthird row\n")
    cfg = data_config(train=path, skip_bad_records=True, eval_fraction=0.0)
    it = build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=16, batch_size=1)
    assert it.stats()["bad_records"] == 1 and it.stats()["records_read"] == 2
    with pytest.raises(DataError, match=r"d\.csv:3: not valid UTF-8"):
        build_train_iterator(data_config(train=path), llama2_tokenizer, kind="lm", seq_len=16, batch_size=1)


# -- benchmark files -----------------------------------------------------------------------------
MEDQA = {"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "A"}


def test_benchmark_non_utf8_names_file_and_line(tmp_path):
    path = _write(tmp_path / "test.jsonl", (json.dumps(MEDQA) + "\n").encode() + b'{"question": "' + LATIN1 + b'"}\n')
    with pytest.raises(BenchmarkFormatError, match=r"test\.jsonl:2: not valid UTF-8 \(byte 0xe9\)"):
        read_medqa(path)
    path = _write(tmp_path / "ori_pqal.json", b'{\n "1": {"QUESTION": "' + LATIN1 + b'"}}')
    with pytest.raises(BenchmarkFormatError, match=r"ori_pqal\.json:2: not valid UTF-8"):
        read_pqal(path)
    path = _write(tmp_path / "anatomy_dev.csv", b"q,a,b,c,d,A\n" + LATIN1 + b",a,b,c,d,B\n")
    with pytest.raises(BenchmarkFormatError, match=r"anatomy_dev\.csv:2: not valid UTF-8"):
        read_exam_csv(path, "mmlu_medical", "en")


def test_benchmark_bom_is_accepted(tmp_path):
    path = _write(tmp_path / "test.jsonl", BOM + (json.dumps(MEDQA) + "\n").encode())
    assert read_medqa(path)[0].answer == {"A"}
    record = {"question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4}
    path = _write(tmp_path / "dev.json", BOM + (json.dumps(record) + "\n").encode())
    assert read_medmcqa(path)[0].answer == {"D"}


def test_benchmark_csv_unterminated_quote(tmp_path):
    path = _write(tmp_path / "anatomy_dev.csv", b'q1,a,b,c,d,A\n"q2,a,b,c,d,B\nq3,a,b,c,d,C\n')
    with pytest.raises(BenchmarkFormatError, match=r"anatomy_dev\.csv:2: bad CSV row .*unterminated quote"):
        read_exam_csv(path, "mmlu_medical", "en")


def test_medqa_hf_layout_with_a_gap_in_its_endings(tmp_path):
    record = {"sent1": "Q?", "ending0": "x", "ending2": "z", "label": 0}
    path = _write(tmp_path / "test.jsonl", (json.dumps(record) + "\n").encode())
    with pytest.raises(BenchmarkFormatError, match=r"test\.jsonl:1: options must be ending0\.\.ending"):
        read_medqa(path)
