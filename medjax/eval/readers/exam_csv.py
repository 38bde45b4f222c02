"""Four-option exam CSVs: MMLU (headerless), CMMLU and C-Eval (with a header row).

MMLU:   question,A,B,C,D,answer                       (no header)
CMMLU:  ,Question,A,B,C,D,Answer                      (first column is the row index)
C-Eval: id,question,A,B,C,D,answer,explanation
The subject is the file name without its split suffix (anatomy_dev.csv -> anatomy).
"""
from __future__ import annotations

import os
import re

from medjax.eval.question import BenchmarkFormatError, Question, check_answer
from medjax.eval.readers.source_files import read_csv_rows

LETTERS = ("A", "B", "C", "D")


def subject_of(path: str) -> str:
    name = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"_(dev|val|test|train)$", "", name)


def read_exam_csv(path: str, task: str, language: str) -> list[Question]:
    rows = list(read_csv_rows(path))
    if not rows:
        raise BenchmarkFormatError(f"{path}:1: empty file")
    subject = subject_of(path)
    header = [c.strip().lower() for c in rows[0][1]]
    if "question" in header:
        columns = {name: i for i, name in enumerate(header)}
        missing = [k for k in ("question", "a", "b", "c", "d", "answer") if k not in columns]
        if missing:
            raise BenchmarkFormatError(f"{path}:{rows[0][0]}: header lacks {missing}; found {rows[0][1]}")
        id_column = columns.get("id", 0 if header[0] == "" else None)
        body = rows[1:]
    else:
        columns = {"question": 0, "a": 1, "b": 2, "c": 3, "d": 4, "answer": 5}
        id_column = None
        body = rows
    width = max(columns.values()) + 1
    questions = []
    for line_no, row in body:
        where = f"{path}:{line_no}"
        if len(row) < width:
            raise BenchmarkFormatError(f"{where}: expected at least {width} fields, got {len(row)}")
        options = {k: row[columns[k.lower()]].strip() for k in LETTERS}
        stem = row[columns["question"]].strip()
        if not stem:
            raise BenchmarkFormatError(f"{where}: empty question")
        own_id = row[id_column].strip() if id_column is not None else str(line_no)
        questions.append(Question(
            task=task, id=f"{subject}:{own_id}", question=stem, options=options,
            answer=check_answer([row[columns["answer"]].strip()], options, where),
            language=language, source=where, subject=subject))
    return questions
