"""CMExam CSV: Question, Options ("A 原发病\\nB 出血部位..."), Answer ("C" or "ACD"), Explanation.

Options are separated by real newlines or by a literal backslash-n (both occur in the copies in
circulation). The released files carry no question-type column, so a question is multi-answer
exactly when its gold answer holds several letters.
"""
from __future__ import annotations

import re

from medjax.eval.question import BenchmarkFormatError, Question, check_answer
from medjax.eval.readers.source_files import read_csv_rows

_OPTION = re.compile(r"^\s*([A-J])\s*[.．、:：)]?\s*(.*)$", re.S)


def parse_options(text: str, where: str) -> dict[str, str]:
    options = {}
    for line in re.split(r"\\n|\n", text):
        if not line.strip():
            continue
        m = _OPTION.match(line)
        if not m or not m.group(2).strip():
            raise BenchmarkFormatError(f"{where}: option line {line!r} is not 'LETTER text'")
        options[m.group(1)] = m.group(2).strip()
    if len(options) < 2:
        raise BenchmarkFormatError(f"{where}: fewer than two options in {text!r}")
    return options


def read_cmexam(path: str, task: str = "cmexam") -> list[Question]:
    rows = list(read_csv_rows(path))
    if not rows:
        raise BenchmarkFormatError(f"{path}:1: empty file")
    header = [c.strip() for c in rows[0][1]]
    missing = [k for k in ("Question", "Options", "Answer") if k not in header]
    if missing:
        raise BenchmarkFormatError(f"{path}:{rows[0][0]}: header lacks {missing}; found {header}")
    col = {name: i for i, name in enumerate(header)}
    questions = []
    for line_no, row in rows[1:]:
        where = f"{path}:{line_no}"
        if len(row) != len(header):
            raise BenchmarkFormatError(f"{where}: expected {len(header)} fields, got {len(row)}")
        stem = row[col["Question"]].strip()
        if not stem:
            raise BenchmarkFormatError(f"{where}: empty Question")
        options = parse_options(row[col["Options"]], where)
        letters = re.sub(r"[\s,，、]", "", row[col["Answer"]])
        answer = check_answer(list(letters), options, where)
        questions.append(Question(
            task=task, id=str(line_no), question=stem, options=options, answer=answer,
            language="zh", source=where, multi=len(answer) > 1))
    return questions
