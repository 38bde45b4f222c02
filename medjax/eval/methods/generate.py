"""Greedy generation, then answer extraction; open-ended items are compared to their reference."""
from __future__ import annotations

from typing import Sequence

from medjax.eval.extraction import extract_choice
from medjax.eval.generation import generate_texts, stop_strings
from medjax.eval.open_ended import rouge_l_f1
from medjax.eval.options import EvalOptions
from medjax.eval.prompts import answer_text, build_prompt, style_for
from medjax.eval.question import Question


def run_generate(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
                 options: EvalOptions) -> list[dict]:
    styles = [style_for(q, options.prompt_style) for q in questions]
    prompts = [build_prompt(q, s, st, options.chat) for q, s, st in zip(questions, shots, styles)]
    open_ended = any(q.open_ended for q in questions)
    texts = generate_texts(
        lm, prompts, options, options.max_reason_tokens if open_ended else options.max_new_tokens,
        stops=stop_strings(styles[0]) + ([] if open_ended else ["\n\n"]))
    predictions = []
    for q, prompt, text in zip(questions, prompts, texts):
        record = {"task": q.task, "id": q.id, "source": q.source, "prompt": prompt, "output": text}
        if q.open_ended:
            record.update(gold=q.reference, pred=text, rouge_l_f1=rouge_l_f1(text, q.reference))
        else:
            chosen = extract_choice(text, q.options)
            record.update(gold=answer_text(q.answer), pred=None if chosen is None else answer_text(chosen),
                          correct=chosen == q.answer)
        predictions.append(record)
    return predictions
