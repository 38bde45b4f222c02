"""Readers and record formats: every supported file type and shape, and clear errors on bad input."""
import json

import pytest

from medjax.data.config import data_config
from test_data_fixtures import llama2_tokenizer  # noqa: F401  (fixture)
from medjax.data.formats import to_record
from medjax.data.pipeline import build_train_iterator, load_source
from medjax.data.mixture import parse_sources
from medjax.data.readers import read_rows
from medjax.data.records import DataError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def _jsonl(path, rows):
    return _write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def test_formats_become_one_canonical_record():
    alpaca = to_record({"instruction": "Name a drug.", "input": "For fever.", "output": "Paracetamol.",
                        "history": [["hi", "hello"]]}, "a:1")
    assert [m["role"] for m in alpaca.messages] == ["user", "assistant", "user", "assistant"]
    assert alpaca.messages[2]["content"] == "Name a drug.\nFor fever."
    share = to_record({"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "q"},
                                         {"from": "gpt", "value": "a"}]}, "s:1")
    assert share.shape == "chat" and share.messages[0] == {"role": "system", "content": "Be kind."}
    msgs = to_record({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "m:1")
    assert msgs.messages == share.messages[1:]
    medicalgpt_pair = to_record({"conversations": [{"from": "human", "value": "q"}], "chosen": "good",
                                 "rejected": "bad"}, "p:1")
    assert medicalgpt_pair.shape == "pref" and medicalgpt_pair.chosen == "good"
    prompt_pair = to_record({"prompt": "q", "chosen": "good", "rejected": "bad"}, "p:2")
    assert prompt_pair.messages == medicalgpt_pair.messages
    reward_pair = to_record({"question": "q", "response_chosen": "good", "response_rejected": "bad"}, "p:3")
    assert reward_pair == prompt_pair.__class__(origin="p:3", messages=prompt_pair.messages,
                                                chosen="good", rejected="bad")
    assert to_record({"text": "hello", "id": 3}, "t:1").text == "hello"
    alpaca_pair = to_record({"instruction": "q", "input": "", "chosen": "good", "rejected": "bad"}, "p:4")
    assert alpaca_pair.messages == prompt_pair.messages
    openai_pair = to_record({"prompt": [{"role": "user", "content": "q"}],
                             "chosen": [{"role": "assistant", "content": "good"}],
                             "rejected": [{"role": "assistant", "content": "bad"}]}, "p:5")
    assert (openai_pair.messages, openai_pair.chosen, openai_pair.rejected) == (prompt_pair.messages, "good", "bad")


def test_unknown_keys_error_lists_the_keys_found():
    with pytest.raises(DataError, match=r"f\.jsonl:7.*keys found: \['answer', 'query'\]"):
        to_record({"query": "q", "answer": "a"}, "f.jsonl:7")


def test_dialogue_structure_errors_name_the_record():
    with pytest.raises(DataError, match="x:2: turn 1 is 'user'"):
        to_record({"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "q"}]}, "x:2")
    with pytest.raises(DataError, match="unknown speaker 'robot'"):
        to_record({"conversations": [{"from": "robot", "value": "q"}]}, "x:3")


def test_malformed_json_line_is_an_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": broken\n{"text": "fine"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        list(read_rows(path))


def test_skip_bad_records_skips_and_counts_them(tmp_path, llama2_tokenizer):
    path = _write(tmp_path / "bad.jsonl", '{"text": "one"}\n{"text": broken\n{"query": "x"}\n{"text": "two"}\n')
    cfg = data_config(train=path, skip_bad_records=True, eval_fraction=0.0)
    it = build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=16, batch_size=1)
    next(it)
    assert it.stats()["bad_records"] == 2 and it.stats()["records_read"] == 3
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        build_train_iterator(data_config(train=path), llama2_tokenizer, kind="lm", seq_len=16, batch_size=1)


def test_empty_file_is_an_error(tmp_path):
    for name in ("empty.jsonl", "empty.txt", "empty.json", "empty.csv"):
        path = _write(tmp_path / name, "")
        with pytest.raises(DataError, match=f"{name}: empty file"):
            list(read_rows(path))


def test_a_record_of_the_wrong_shape_for_the_kind_is_an_error(tmp_path, llama2_tokenizer):
    path = _jsonl(tmp_path / "t.jsonl", [{"text": "plain"}])
    with pytest.raises(DataError, match=r"t\.jsonl:1: a 'text' record cannot train kind 'sft'"):
        build_train_iterator(data_config(train=path), llama2_tokenizer, kind="sft", seq_len=16, batch_size=1)


def test_every_file_type_glob_and_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _write(tmp_path / "a.txt", "first paragraph\nstill first\n\nsecond\n")
    _jsonl(tmp_path / "b.jsonl", [{"text": "jsonl"}])
    _write(tmp_path / "c.json", json.dumps([{"text": "json list"}]))
    _write(tmp_path / "d.csv", "text,id\ncsv row,1\n")
    pq.write_table(pa.table({"text": ["parquet row"]}), str(tmp_path / "e.parquet"))
    rows = list(read_rows(str(tmp_path)))
    assert [r["text"] for r, _ in rows] == ["first paragraph\nstill first", "second", "jsonl", "json list",
                                            "csv row", "parquet row"]
    assert rows[1][1].endswith("a.txt:4") and rows[4][1].endswith("d.csv:2")
    assert [r["text"] for r, _ in read_rows(str(tmp_path / "*.txt"), text_unit="line")] == [
        "first paragraph", "still first", "second"]
    with pytest.raises(DataError, match="matches no files"):
        list(read_rows(str(tmp_path / "*.xml")))
    with pytest.raises(DataError, match="does not exist"):
        list(read_rows(str(tmp_path / "missing.jsonl")))


def test_json_lines_saved_as_json_and_id_keyed_objects(tmp_path):
    lines = _write(tmp_path / "lines.json", '{"text": "a"}\n{"text": "b"}\n')
    assert [r["text"] for r, _ in read_rows(lines)] == ["a", "b"]
    keyed = _write(tmp_path / "keyed.json", json.dumps({"123": {"text": "x"}, "456": {"text": "y"}}))
    assert [(r["id"], r["text"]) for r, _ in read_rows(keyed)] == [("123", "x"), ("456", "y")]


def test_hf_dataset_directory(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"instruction": "q", "output": "a"}]).save_to_disk(str(tmp_path / "ds"))
    cfg = data_config(train=str(tmp_path / "ds"))
    (spec,) = parse_sources(cfg.train)
    records = load_source(spec, cfg, "sft", __import__("collections").Counter())
    assert records[0].messages[-1] == {"role": "assistant", "content": "a"}


def test_source_list_errors():
    with pytest.raises(DataError, match=r"data.train\[0\] has unknown keys \['wieght'\]"):
        parse_sources([{"path": "a.jsonl", "wieght": 2}])
    with pytest.raises(DataError, match="priority to every non-replay source or to none"):
        parse_sources([{"path": "a.jsonl", "priority": 2}, {"path": "b.jsonl"}])
    with pytest.raises(DataError, match="data.train is not set"):
        parse_sources(None)
