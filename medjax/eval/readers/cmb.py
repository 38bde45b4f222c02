"""CMB (FreedomIntelligence/CMB): CMB-Exam multiple choice and CMB-Clin open-ended case analyses.

CMB-Exam: a JSON list of {"question", "option": {"A": ..}, "answer": "BCDE", "question_type":
"单项选择题" | "多项选择题", "exam_type", "exam_class", "exam_subject", optional "id"}.
CMB-Clin: a JSON list of {"id", "title", "description", "QA_pairs": [{"question", "answer"}]};
each QA pair becomes one open-ended item "<case id>-<pair index>" with the case as context.
"""
from __future__ import annotations

import re

from medjax.eval.question import BenchmarkFormatError, Question, check_answer
from medjax.eval.readers.source_files import read_json_list, require_fields, require_text

MULTI_TYPE = "多项选择题"


def read_cmb_exam(path: str, task: str = "cmb") -> list[Question]:
    questions = []
    for index, (line, record) in enumerate(read_json_list(path)):
        where = f"{path}:{line}"
        if not isinstance(record, dict):
            raise BenchmarkFormatError(f"{where}: expected an object")
        require_fields(record, ("question", "option", "answer"), where)
        if not isinstance(record["option"], dict) or len(record["option"]) < 2:
            raise BenchmarkFormatError(f"{where}: 'option' must map letters to texts")
        options = {str(k).strip(): str(v).strip() for k, v in record["option"].items()
                   if str(v).strip()}
        letters = re.sub(r"[\s,，、]", "", str(record["answer"]))
        answer = check_answer(list(letters), options, where)
        questions.append(Question(
            task=task, id=str(record.get("id", index)),
            question=require_text(record["question"], "question", where), options=options,
            answer=answer, language="zh", source=where,
            multi=record.get("question_type") == MULTI_TYPE or len(answer) > 1,
            subject=str(record.get("exam_subject") or record.get("exam_class") or "")))
    return questions


def read_cmb_clin(path: str, task: str = "cmb_clin") -> list[Question]:
    questions = []
    for line, case in read_json_list(path):
        where = f"{path}:{line}"
        if not isinstance(case, dict):
            raise BenchmarkFormatError(f"{where}: expected an object")
        require_fields(case, ("id", "description", "QA_pairs"), where)
        if not isinstance(case["QA_pairs"], list) or not case["QA_pairs"]:
            raise BenchmarkFormatError(f"{where}: 'QA_pairs' must be a non-empty list")
        description = require_text(case["description"], "description", where)
        for j, pair in enumerate(case["QA_pairs"]):
            pair_where = f"{where} QA_pairs[{j}]"
            if not isinstance(pair, dict):
                raise BenchmarkFormatError(f"{pair_where}: expected an object")
            require_fields(pair, ("question", "answer"), pair_where)
            questions.append(Question(
                task=task, id=f"{case['id']}-{j}",
                question=require_text(pair["question"], "question", pair_where), options={},
                answer=frozenset(), language="zh", source=pair_where, context=description,
                reference=require_text(pair["answer"], "answer", pair_where),
                subject=str(case.get("title", ""))))
    return questions
