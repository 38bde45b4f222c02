"""Benchmark readers on the real sample files, malformed records, and data_dir layout errors."""
import json
import os

import pytest

from medjax.eval.question import BenchmarkFormatError, LayoutError
from medjax.eval.readers.cmb import read_cmb_exam
from medjax.eval.readers.medmcqa import read_medmcqa
from medjax.eval.readers.medqa import read_medqa
from medjax.eval.tasks import TASKS, load_split

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "benchmarks")
DEFAULT_BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "medjax", "assets", "default", "benchmarks")

# (task, split) -> record count of the sample files in ../shared/data/benchmarks
EXPECTED_COUNTS = {
    ("medqa", "sample"): 100, ("medmcqa", "dev"): 200, ("pubmedqa", "nontest"): 500,
    ("mmlu_medical", "val"): 123, ("mmlu_medical", "dev"): 30, ("cmmlu_medical", "dev"): 50,
    ("ceval_medical", "dev"): 20, ("cmexam", "val"): 100, ("cmb_clin", "test"): 27,
}


@pytest.mark.parametrize("task,split", sorted(EXPECTED_COUNTS))
def test_every_record_of_every_sample_file_parses(task, split):
    loaded = load_split(task, SHARED, split)
    assert len(loaded.questions) == EXPECTED_COUNTS[(task, split)]
    ids = [q.id for q in loaded.questions]
    assert len(set(ids)) == len(ids), "ids must identify items"
    for q in loaded.questions:
        assert q.question and q.source.startswith(loaded.files[0].rsplit("/", 2)[0])
        if q.open_ended:
            assert q.reference and q.context
        else:
            assert q.answer and q.answer <= set(q.options)


def test_default_split_is_the_first_present_and_named():
    assert load_split("medqa", SHARED).split == "sample"
    assert load_split("mmlu_medical", SHARED).split == "val"  # no test/ folder in the shared copy


def test_embedded_default_medqa_is_found():
    loaded = load_split("medqa", DEFAULT_BENCHMARKS)
    assert loaded.questions and loaded.files[0].endswith("medqa_usmle/sample.jsonl")


def test_real_values_are_read_as_published():
    medmcqa = load_split("medmcqa", SHARED, "dev").questions[0]
    assert medmcqa.answer == {"A"}  # cop 1 in the 1-based original file
    assert medmcqa.id == "45258d3d-b974-44dd-a161-c3fccbdadd88"
    pubmed = load_split("pubmedqa", SHARED).questions[0]
    assert pubmed.id == "10808977" and pubmed.answer == {"yes"} and "mammography" in pubmed.context
    cmexam = load_split("cmexam", SHARED).questions[0]
    assert cmexam.options["B"] == "出血部位" and len(cmexam.options) == 5 and cmexam.answer == {"C"}
    clin = load_split("cmb_clin", SHARED).questions[0]
    assert clin.id == "0-0" and clin.reference.startswith("诊断")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def test_medqa_hf_layout(tmp_path):
    path = _write(tmp_path / "m.jsonl", json.dumps(
        {"id": "q7", "sent1": "Which?", "sent2": "", "ending0": "a", "ending1": "b", "ending2": "c",
         "ending3": "d", "label": 2}) + "\n")
    (q,) = read_medqa(path)
    assert q.id == "q7" and q.options == {"A": "a", "B": "b", "C": "c", "D": "d"} and q.answer == {"C"}


@pytest.mark.parametrize("cops,first_answer", [([0, 1, 3], "A"), ([4, 1, 2], "D")])
def test_medmcqa_cop_base_is_detected_from_the_file(tmp_path, cops, first_answer):
    rows = [{"question": f"q{i}", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": c}
            for i, c in enumerate(cops)]
    path = _write(tmp_path / "dev.json", "".join(json.dumps(r) + "\n" for r in rows))
    # a 0 proves 0-based (cop 0 -> A); a 4 proves 1-based (cop 4 -> D)
    assert read_medmcqa(path)[0].answer == {first_answer}


def test_medmcqa_ambiguous_cop_is_refused(tmp_path):
    rows = [{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2}]
    path = _write(tmp_path / "dev.json", json.dumps(rows[0]) + "\n")
    with pytest.raises(BenchmarkFormatError, match="0-based.*1-based"):
        read_medmcqa(path)


MALFORMED = {
    "medqa": ("medqa_usmle/sample.jsonl",
              '{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}\n'
              '{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "E"}\n', ":2"),
    "medmcqa": ("medmcqa/dev.json",
                '{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 4}\n'
                '{"question": "q", "opa": "a", "opb": "b", "opc": "c", "cop": 1}\n', ":2"),
    "pubmedqa": ("pubmedqa/pqal_nontest.json",
                 '{"1": {"QUESTION": "q", "CONTEXTS": ["c"], "final_decision": "yes"},\n'
                 ' "2": {"QUESTION": "q", "CONTEXTS": ["c"], "final_decision": "perhaps"}}', ":2"),
    "mmlu_medical": ("mmlu_medical/val/anatomy_val.csv", "q,a,b,c,d,A\nq2,a,b,c,d,F\n", ":2"),
    "cmmlu_medical": ("cmmlu_medical/dev/anatomy.csv", ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n1,q,a,b\n", ":3"),
    "ceval_medical": ("ceval_medical/dev/physician_dev.csv",
                      "id,question,A,B,C,D,answer,explanation\n0,q,a,b,c,d,Z,e\n", ":2"),
    "cmexam": ("cmexam/val.csv", 'Question,Options,Answer,Explanation\nq,"A x\\nB y",A,e\nq,"A x\\nB y",AC,e\n', ":3"),
    "cmb": ("cmb/CMB-val/CMB-val-merge.json",
            '[\n {"question": "q", "option": {"A": "a", "B": "b"}, "answer": "A"},\n'
            ' {"question": "q", "option": {"A": "a", "B": "b"}}\n]', ":3"),
    "cmb_clin": ("cmb_clin/CMB-Clin-qa.json",
                 '[\n {"id": "0", "description": "d", "QA_pairs": [{"question": "q"}]}\n]', ":2"),
}


@pytest.mark.parametrize("task", sorted(MALFORMED))
def test_malformed_record_names_file_and_line(tmp_path, task):
    relative, text, line = MALFORMED[task]
    path = _write(tmp_path / relative, text)
    with pytest.raises(BenchmarkFormatError) as error:
        load_split(task, str(tmp_path))
    assert f"{path}{line}" in str(error.value)


def test_cmb_exam_multi_answer(tmp_path):
    path = _write(tmp_path / "val.json", json.dumps([
        {"question": "肝主疏泄，主要表现在", "answer": "BCDE", "question_type": "多项选择题",
         "option": {"A": "通调水道", "B": "调畅气机", "C": "助脾运化", "D": "条达情志", "E": "调节生殖功能"}}],
        ensure_ascii=False))
    (q,) = read_cmb_exam(path)
    assert q.multi and q.answer == set("BCDE")


def test_pubmedqa_test_split_uses_ground_truth_ids(tmp_path):
    record = {"QUESTION": "q", "CONTEXTS": ["c"], "final_decision": "no"}
    _write(tmp_path / "pubmedqa/ori_pqal.json", json.dumps({"1": record, "2": record, "3": record}))
    _write(tmp_path / "pubmedqa/test_ground_truth.json", json.dumps({"2": "no"}))
    assert [q.id for q in load_split("pubmedqa", str(tmp_path), "test").questions] == ["2"]
    assert [q.id for q in load_split("pubmedqa", str(tmp_path), "nontest").questions] == ["1", "3"]


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'medqb'.*medqa.*pubmedqa"):
        load_split("medqb", SHARED)


def test_missing_split_lists_expected_and_found():
    with pytest.raises(LayoutError) as error:
        load_split("mmlu_medical", SHARED, "test")
    message = str(error.value)
    assert "test/*_test.csv" in message and "val/anatomy_val.csv" in message


def test_data_dir_without_layout_lists_folders(tmp_path):
    (tmp_path / "random_stuff").mkdir()
    with pytest.raises(LayoutError) as error:
        load_split("medqa", str(tmp_path))
    assert "medqa_usmle" in str(error.value) and "random_stuff" in str(error.value)
    with pytest.raises(LayoutError, match="not a directory"):
        load_split("medqa", str(tmp_path / "nope"))


def test_every_task_is_registered():
    assert set(TASKS) == {"medqa", "medmcqa", "pubmedqa", "mmlu_medical", "cmmlu_medical",
                          "ceval_medical", "cmexam", "cmb", "cmb_clin"}
