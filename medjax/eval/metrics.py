"""Per-task summary numbers from per-item predictions, with the baselines to read them against."""
from __future__ import annotations

import collections
from typing import Sequence

from medjax.eval.prompts import answer_text
from medjax.eval.question import Question


def chance_accuracy(q: Question) -> float:
    """Expected accuracy of a uniform guess among the candidates the method can output."""
    k = len(q.options)
    return 1.0 / (2 ** k - 1) if q.multi else 1.0 / k


def summarize(questions: Sequence[Question], predictions: Sequence[dict]) -> dict:
    """Scores over the questions the method could score; `skipped` counts the rest (their records
    say why), so a task that fits only partly still reports on what it scored."""
    kept = [(q, p) for q, p in zip(questions, predictions) if "skipped" not in p]
    skipped = {"skipped": len(predictions) - len(kept)} if len(kept) < len(predictions) else {}
    questions, predictions = [q for q, _ in kept], [p for _, p in kept]
    n = len(predictions)
    if n == 0:
        return {"n": 0, **skipped}
    if questions[0].open_ended:
        out = {"n": n}
        if "logprob_per_token" in predictions[0]:
            out["mean_logprob_per_token"] = sum(p["logprob_per_token"] for p in predictions) / n
        if "rouge_l_f1" in predictions[0]:
            out["rouge_l_f1"] = sum(p["rouge_l_f1"] for p in predictions) / n
        return {**out, **skipped}
    golds = collections.Counter(answer_text(q.answer) for q in questions)
    out = {
        "n": n,
        "accuracy": sum(bool(p["correct"]) for p in predictions) / n,
        "unparseable": sum(p["pred"] is None for p in predictions),
        "chance": sum(chance_accuracy(q) for q in questions) / n,
        "majority": golds.most_common(1)[0][1] / n,
        "majority_answer": golds.most_common(1)[0][0],
        "multi_answer_questions": sum(q.multi for q in questions),
        **skipped,
    }
    if "correct_norm" in predictions[0]:
        out["acc_norm"] = sum(bool(p["correct_norm"]) for p in predictions) / n
    subjects = collections.defaultdict(list)
    for q, p in zip(questions, predictions):
        subjects[q.subject].append(bool(p["correct"]))
    if len(subjects) > 1 and "" not in subjects:  # MMLU/CMMLU/C-Eval subjects, MedQA steps, ...
        out["by_subject"] = {s: {"n": len(c), "accuracy": sum(c) / len(c)} for s, c in sorted(subjects.items())}
    return out
