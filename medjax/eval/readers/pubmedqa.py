"""PubMedQA PQA-L: one JSON object keyed by PMID with QUESTION, CONTEXTS, final_decision.

The official test fold is the set of PMIDs in test_ground_truth.json ({pmid: decision}); the
caller passes those ids to keep (split=test) or to drop (the non-test part of ori_pqal.json).
"""
from __future__ import annotations

from medjax.eval.question import BenchmarkFormatError, Question
from medjax.eval.readers.source_files import line_of_key, read_json_document, require_fields, require_text

DECISIONS = ("yes", "no", "maybe")


def read_pqal(path: str, task: str = "pubmedqa", keep_ids=None, drop_ids=None) -> list[Question]:
    data, text = read_json_document(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}:1: expected an object keyed by PMID")
    questions = []
    for pmid, record in data.items():
        if (keep_ids is not None and pmid not in keep_ids) or (drop_ids and pmid in drop_ids):
            continue
        where = f"{path}:{line_of_key(text, pmid)} (PMID {pmid})"
        if not isinstance(record, dict):
            raise BenchmarkFormatError(f"{where}: expected an object")
        require_fields(record, ("QUESTION", "CONTEXTS", "final_decision"), where)
        contexts = record["CONTEXTS"]
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise BenchmarkFormatError(f"{where}: 'CONTEXTS' must be a list of strings")
        decision = record["final_decision"]
        if decision not in DECISIONS:
            raise BenchmarkFormatError(f"{where}: 'final_decision' must be one of {DECISIONS}, got {decision!r}")
        questions.append(Question(
            task=task, id=str(pmid), question=require_text(record["QUESTION"], "QUESTION", where),
            options={d: d for d in DECISIONS}, answer=frozenset([decision]), language="en",
            source=where, context=" ".join(c.strip() for c in contexts)))
    return questions


def read_test_ids(path: str) -> set[str]:
    """PMIDs of the official test fold from test_ground_truth.json."""
    data, _ = read_json_document(path)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{path}:1: expected an object {{pmid: decision}}")
    return set(data)
