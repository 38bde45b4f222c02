"""Chain-of-thought with self-consistency: k sampled reasoning paths per question, the answer of
each path extracted, and the most frequent answer wins. Ties go to the answer reached by the
earliest path; a question whose paths are all unparseable is unparseable."""
from __future__ import annotations

import collections
from typing import Sequence

from medjax.eval.extraction import extract_choice
from medjax.eval.generation import generate_texts, stop_strings
from medjax.eval.options import EvalOptions
from medjax.eval.prompts import answer_text, build_prompt, style_for
from medjax.eval.question import Question


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    votes = collections.Counter(a for a in answers if a is not None)
    if not votes:
        return None, {}
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return winner, dict(votes)


def run_cot(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
            options: EvalOptions) -> list[dict]:
    if any(q.open_ended for q in questions):
        raise ValueError(f"method 'cot' needs multiple-choice questions; {questions[0].task} is open-ended")
    k = options.cot_samples
    if k < 1:
        raise ValueError(f"cot_samples must be >= 1, got {k}")
    styles = [style_for(q, options.prompt_style) for q in questions]
    prompts = [build_prompt(q, s, st, options.chat, suffix=st.think)
               for q, s, st in zip(questions, shots, styles)]
    paths = generate_texts(lm, [p for p in prompts for _ in range(k)], options,
                           options.max_reason_tokens, temperature=options.temperature,
                           seed=options.seed, stops=stop_strings(styles[0]), label="cot path batches")
    predictions = []
    for i, (q, prompt) in enumerate(zip(questions, prompts)):
        outputs = paths[i * k:(i + 1) * k]
        answers = [extract_choice(t, q.options) for t in outputs]
        labels = [None if a is None else answer_text(a) for a in answers]
        pred, votes = majority_vote(labels)
        predictions.append({
            "task": q.task, "id": q.id, "source": q.source, "prompt": prompt, "paths": outputs,
            "path_answers": labels, "votes": votes, "gold": answer_text(q.answer), "pred": pred,
            "correct": pred == answer_text(q.answer)})
    return predictions
