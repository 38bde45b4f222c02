"""Fuzzing the readers of untrusted files: random bytes, and valid files truncated or with a few
bytes changed, either read or fail with our own error naming the file; never struct.error,
UnicodeDecodeError, MemoryError, IndexError, KeyError, ... out of a parser."""
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medjax.checkpoint.hf_io import SafetensorsFile, WeightFileError, write_safetensors
from medjax.data.formats import to_record
from medjax.data.readers import read_rows
from medjax.data.records import DataError
from medjax.eval.question import BenchmarkFormatError
from medjax.eval.readers.cmb import read_cmb_clin, read_cmb_exam
from medjax.eval.readers.cmexam import read_cmexam
from medjax.eval.readers.exam_csv import read_exam_csv
from medjax.eval.readers.medmcqa import read_medmcqa
from medjax.eval.readers.medqa import read_medqa
from medjax.eval.readers.pubmedqa import read_pqal

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """A valid file cut short, with up to three bytes overwritten."""
    data = bytearray(valid[:draw(st.integers(0, len(valid)))])
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def untrusted(valid: bytes):
    return st.one_of(st.binary(max_size=300), damaged(valid))


def _parquet_bytes() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"text": ["a parquet row", "another"]}), out)
    return out.getvalue()


DATA_FILES = {
    "d.jsonl": b'{"text": "one"}\n{"instruction": "q", "output": "a"}\n'
               b'{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n',
    "d.json": json.dumps([{"text": "one"}, {"messages": [{"role": "user", "content": "q"},
                                                         {"role": "assistant", "content": "a"}]}]).encode(),
    "d.csv": b'instruction,output\n"a, quoted\ncell",yes\nq2,a2\n',
    "d.txt": "first paragraph\nstill first\n\nsecond é paragraph\n".encode(),
    "d.parquet": _parquet_bytes(),
}


def _must_name(error: Exception, path: str) -> None:
    assert path in str(error), f"the error does not name {path}: {error}"


@pytest.mark.parametrize("name", sorted(DATA_FILES))
@FUZZ
@given(data=st.data())
def test_data_readers_fail_only_with_data_errors(tmp_path, name, data):
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data.draw(untrusted(DATA_FILES[name])))
    try:
        for row, origin in read_rows(path, skip_bad=data.draw(st.booleans())):
            to_record(row, origin)
    except DataError as e:
        _must_name(e, path)


_MEDQA = {"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "A"}
_MEDQA_HF = {"id": "1", "sent1": "Q?", "sent2": "", "ending0": "x", "ending1": "y", "label": 1}
_MEDMCQA = {"question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4, "id": "m"}
_CMB = {"question": "问?", "option": {"A": "甲", "B": "乙"}, "answer": "A", "question_type": "单项选择题"}
_CLIN = {"id": 0, "title": "t", "description": "病例", "QA_pairs": [{"question": "问", "answer": "答"}]}
_PQAL = {"123": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "yes"}}


def _lines(*records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


BENCHMARKS = {
    "medqa": ("t.jsonl", read_medqa, _lines(_MEDQA, _MEDQA_HF)),
    "medmcqa": ("t.json", read_medmcqa, _lines(_MEDMCQA, dict(_MEDMCQA, cop=1))),
    "pubmedqa": ("t.json", read_pqal, json.dumps(_PQAL).encode()),
    "cmb": ("t.json", read_cmb_exam, json.dumps([_CMB, _CMB], ensure_ascii=False).encode()),
    "cmb_clin": ("t.json", read_cmb_clin, json.dumps([_CLIN], ensure_ascii=False).encode()),
    "exam_csv": ("anatomy_dev.csv", lambda p, t: read_exam_csv(p, t, "en"),
                 b'id,question,A,B,C,D,answer\n1,"Q, quoted?",a,b,c,d,B\n2,Q2,a,b,c,d,D\n'),
    "cmexam": ("t.csv", read_cmexam,
               "Question,Options,Answer\n问?,\"A 甲\nB 乙\",B\n问2,A 甲\\nB 乙,AB\n".encode()),
}


@pytest.mark.parametrize("task", sorted(BENCHMARKS))
@FUZZ
@given(data=st.data())
def test_benchmark_readers_fail_only_with_format_errors(tmp_path, task, data):
    name, read, valid = BENCHMARKS[task]
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data.draw(untrusted(valid)))
    try:
        read(path, task)
    except BenchmarkFormatError as e:
        _must_name(e, path)


def test_the_valid_fuzz_seeds_read(tmp_path):
    """The damaged files start from files that read, so a fuzz failure is about the damage."""
    for name, valid in DATA_FILES.items():
        (tmp_path / name).write_bytes(valid)
        assert all(to_record(row, origin) for row, origin in read_rows(str(tmp_path / name)))
    for task, (name, read, valid) in BENCHMARKS.items():
        (tmp_path / name).write_bytes(valid)
        assert read(str(tmp_path / name), task)


def _valid_safetensors(tmp_path) -> bytes:
    path = os.path.join(tmp_path, "seed.safetensors")
    write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                             "b": np.ones(3, np.int8), "e": np.zeros((0, 2), np.float16)})
    with open(path, "rb") as f:
        return f.read()


def _read_all(path: str) -> None:
    try:
        st_file = SafetensorsFile(path)
        for name in st_file.keys():
            st_file.get(name)
    except WeightFileError as e:
        _must_name(e, path)


@FUZZ
@given(data=st.data())
def test_safetensors_reader_fails_only_with_weight_file_errors(tmp_path, data):
    path = str(tmp_path / "model.safetensors")
    with open(path, "wb") as f:
        f.write(data.draw(untrusted(_valid_safetensors(tmp_path))))
    _read_all(path)


_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "BF16", "I8", "F8_E4M3", "U64", "X9", 3]),
    "shape": st.one_of(st.lists(st.integers(-2, 4), max_size=3), st.just("2x3")),
    "data_offsets": st.one_of(st.lists(st.integers(-4, 2 ** 64), min_size=2, max_size=2),
                              st.lists(st.integers(0, 40), min_size=0, max_size=3)),
})


@FUZZ
@given(header=st.dictionaries(st.text(max_size=4), _ENTRY, max_size=3), data_len=st.integers(0, 64))
def test_safetensors_headers_that_lie_are_refused(tmp_path, header, data_len):
    """Well-formed JSON headers whose shapes, dtypes and offsets disagree with the data."""
    encoded = json.dumps(header).encode()
    path = str(tmp_path / "lying.safetensors")
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little") + encoded + bytes(data_len))
    _read_all(path)


# -- well-formed JSON whose records hold the wrong things ---------------------------------------
_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 12) | st.text(max_size=3),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                  max_size=3), max_leaves=6)


@st.composite
def mangled(draw, record: dict, extra_keys: tuple[str, ...]) -> dict:
    """A valid record with a few keys dropped, values replaced or stray keys added."""
    record = dict(record)
    for key in list(record):
        action = draw(st.integers(0, 5))  # mostly kept: the other fields must pass for a bad one to matter
        if action == 0:
            del record[key]
        elif action == 1:
            record[key] = draw(_VALUES)
    for key in draw(st.lists(st.sampled_from(extra_keys), max_size=2)):
        record[key] = draw(_VALUES)
    return record


RECORDS = {  # task -> (reader, valid record, stray keys, how a file holds one record)
    "medqa": (read_medqa, _MEDQA, ("sent1", "options"), lambda r: json.dumps(r)),
    "medqa_hf": (read_medqa, _MEDQA_HF, ("ending2", "ending11", "sent2"), lambda r: json.dumps(r)),
    "medmcqa": (read_medmcqa, _MEDMCQA, ("cop", "opa"), lambda r: json.dumps(r)),
    "cmb": (read_cmb_exam, _CMB, ("option", "id"), lambda r: json.dumps([r])),
    "cmb_clin": (read_cmb_clin, _CLIN, ("QA_pairs", "id"), lambda r: json.dumps([r])),
    "pubmedqa": (read_pqal, _PQAL["123"], ("CONTEXTS",), lambda r: json.dumps({"123": r})),
}


@pytest.mark.parametrize("task", sorted(RECORDS))
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_benchmark_records_with_wrong_contents(tmp_path, task, data):
    read, record, extra, encode = RECORDS[task]
    path = str(tmp_path / "t.json")
    with open(path, "w") as f:
        f.write(encode(data.draw(mangled(record, extra))))
    try:
        read(path, task)
    except BenchmarkFormatError as e:
        _must_name(e, path)


_TRAINING_KEYS = ("text", "instruction", "output", "input", "history", "system", "conversations", "messages",
                  "chosen", "rejected", "prompt", "question", "response_chosen", "response_rejected")


@FUZZ
@given(row=st.dictionaries(st.sampled_from(_TRAINING_KEYS), _VALUES, max_size=5))
def test_training_rows_with_wrong_contents(row):
    try:
        to_record(row, "d.jsonl:7")
    except DataError as e:
        _must_name(e, "d.jsonl:7")
