"""Cloze formulation: the question is asked without its options and each option's TEXT is scored
as the answer after the cue; the most likely text's letter is the prediction (acc), the most likely
per character the length-normalised one (acc_norm). Small models pick the letter they favour for
every question when the options are lettered, yet rank the options' texts by what they know (the
"cloze formulation" of OLMES, Gu et al. 2024, arXiv 2406.08446).

Questions whose labels are already their words (PubMedQA's yes/no/maybe) and open-ended ones
are scored as loglik scores them. A multi-answer question has no one text to score: it is skipped,
its record says why.
"""
from __future__ import annotations

from typing import Sequence

from medjax.eval.methods.loglik import loglik_item, loglik_items, score_items
from medjax.eval.options import EvalOptions
from medjax.eval.prompts import build_cloze_prompt, letter_labels, style_for
from medjax.eval.question import Question

MULTI_SKIPPED = ("cloze scores one option's text, and a multi-answer question has several correct options "
                 "(use loglik or generate for it)")


def cloze_items(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
                options: EvalOptions) -> list[tuple[Question, str, list, list, str | None]]:
    """loglik_items' items, with a cloze prompt and the options' texts for lettered questions."""
    items = []
    for q, q_shots in zip(questions, shots):
        if q.open_ended or not letter_labels(q):
            items += loglik_items(lm, [q], [q_shots], options)
            continue
        style = style_for(q, options.prompt_style)
        prompt = build_cloze_prompt(q, q_shots, style, options.chat)
        if q.multi:
            items.append((q, prompt, [], [], MULTI_SKIPPED))
            continue
        conts = [(frozenset([label]), style.label_sep + text) for label, text in q.options.items()]
        items.append(loglik_item(lm, q, prompt, conts))
    return items


def run_cloze(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
              options: EvalOptions) -> list[dict]:
    return score_items(lm, cloze_items(lm, questions, shots, options), options, "cloze")
