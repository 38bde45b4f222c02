"""MedMCQA json lines: question, opa..opd, cop, id, subject_name.

`cop` is 1-based (1..4) in the original release and 0-based (0..3) on the HF hub. The base is
detected from the whole file: a 0 proves 0-based, a 4 proves 1-based; a file showing neither (or
both) is refused rather than guessed.
"""
from __future__ import annotations

from medjax.eval.question import BenchmarkFormatError, Question
from medjax.eval.readers.source_files import read_json_lines, require_fields, require_text

OPTION_KEYS = {"A": "opa", "B": "opb", "C": "opc", "D": "opd"}


def read_medmcqa(path: str, task: str = "medmcqa") -> list[Question]:
    records = list(read_json_lines(path))
    base = cop_base(path, [(n, r.get("cop")) for n, r in records])
    questions = []
    for line_no, record in records:
        where = f"{path}:{line_no}"
        require_fields(record, ("question", "cop", *OPTION_KEYS.values()), where)
        options = {k: require_text(str(record[v]), v, where) for k, v in OPTION_KEYS.items()}
        cop = record["cop"]
        if not isinstance(cop, int) or not base <= cop < base + 4:
            raise BenchmarkFormatError(f"{where}: 'cop' {cop!r} out of range for a {base}-based file")
        questions.append(Question(
            task=task, id=str(record.get("id", line_no)),
            question=require_text(record["question"], "question", where), options=options,
            answer=frozenset("ABCD"[cop - base]), language="en", source=where,
            subject=str(record.get("subject_name") or "")))
    return questions


def cop_base(path: str, cops: list[tuple[int, object]]) -> int:
    """0 or 1: the index base of `cop` over the whole file."""
    for line_no, cop in cops:
        if not isinstance(cop, int) or isinstance(cop, bool) or not 0 <= cop <= 4:
            raise BenchmarkFormatError(f"{path}:{line_no}: 'cop' must be an integer 0..4, got {cop!r}")
    seen = {cop for _, cop in cops}
    if 0 in seen and 4 in seen:
        raise BenchmarkFormatError(f"{path}: 'cop' holds both 0 and 4; cannot be 4 options")
    if 0 in seen:
        return 0
    if 4 in seen:
        return 1
    raise BenchmarkFormatError(
        f"{path}: cannot tell whether 'cop' is 0-based (HF) or 1-based (original): values seen "
        f"{sorted(seen)}; a file with a 0 or a 4 settles it")
