"""MedQA-USMLE json lines, in the original layout or the Hugging Face one.

Original (jind11/MedQA): {"question", "options": {"A": .., "B": ..}, "answer_idx": "B", "answer", ...}.
HF (GBaker/MedQA-USMLE-4-options-hf): {"id", "sent1", "sent2", "ending0".."ending3", "label": 0-based}.
The layout is detected per record from its keys.
"""
from __future__ import annotations

from medjax.eval.question import BenchmarkFormatError, Question, check_answer
from medjax.eval.readers.source_files import read_json_lines, require_fields, require_text

LETTERS = "ABCDEFGHIJ"


def read_medqa(path: str, task: str = "medqa") -> list[Question]:
    questions = []
    for line_no, record in read_json_lines(path):
        where = f"{path}:{line_no}"
        if "sent1" in record:
            questions.append(_from_hf(record, task, where, line_no))
        elif "options" in record:
            questions.append(_from_original(record, task, where, line_no))
        else:
            raise BenchmarkFormatError(
                f"{where}: neither the original MedQA layout (question/options/answer_idx) nor the "
                f"HF layout (sent1/ending0../label); found keys {sorted(record)}")
    return questions


def _from_original(record: dict, task: str, where: str, line_no: int) -> Question:
    require_fields(record, ("question", "options", "answer_idx"), where)
    options = record["options"]
    if not isinstance(options, dict) or len(options) < 2:
        raise BenchmarkFormatError(f"{where}: 'options' must map letters to texts, got {options!r}")
    options = {str(k).strip(): require_text(v, f"options.{k}", where) for k, v in options.items()}
    return Question(
        task=task, id=str(record.get("id", line_no)),
        question=require_text(record["question"], "question", where), options=options,
        answer=check_answer([str(record["answer_idx"]).strip()], options, where),
        language="en", source=where, subject=str(record.get("meta_info", "")))


def _from_hf(record: dict, task: str, where: str, line_no: int) -> Question:
    require_fields(record, ("sent1", "label", "ending0"), where)
    count = sum(1 for k in record if k.startswith("ending"))
    names = [f"ending{i}" for i in range(count)]
    if count > len(LETTERS) or any(n not in record for n in names):
        raise BenchmarkFormatError(f"{where}: options must be ending0..ending{{n-1}} with n <= {len(LETTERS)}; "
                                   f"found {sorted(k for k in record if k.startswith('ending'))}")
    options = {LETTERS[i]: require_text(record[n], n, where) for i, n in enumerate(names)}
    label = record["label"]
    if type(label) is not int or not 0 <= label < len(options):
        raise BenchmarkFormatError(
            f"{where}: 'label' must be a 0-based index below {len(options)}, got {label!r}")
    parts = [require_text(record["sent1"], "sent1", where)]
    sent2 = record.get("sent2")
    if sent2 is not None and not isinstance(sent2, str):
        raise BenchmarkFormatError(f"{where}: 'sent2' must be a string, got {sent2!r}")
    if sent2 and sent2.strip():
        parts.append(sent2.strip())
    return Question(
        task=task, id=str(record.get("id", line_no)), question=" ".join(parts),
        options=options, answer=frozenset(LETTERS[label]), language="en", source=where)
