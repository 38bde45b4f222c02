"""Multiple choice by log-likelihood: score each option's label after the prompt; the argmax is
the prediction (acc), and the argmax of log-likelihood per character of the continuation is the
length-normalised one (acc_norm). Open-ended items score their reference answer instead; one too
long for the model's positions is skipped (its record says why) rather than failing the whole run."""
from __future__ import annotations

from typing import Sequence

from medjax.eval.continuation_scorer import score_requests, tokenize_pair
from medjax.eval.options import EvalOptions
from medjax.eval.progress import progress_counter
from medjax.eval.prompts import answer_text, build_prompt, continuations, style_for
from medjax.eval.question import Question


def loglik_items(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
                 options: EvalOptions) -> list[tuple[Question, str, list, list, str | None]]:
    """Per question: (question, prompt, [(labels, continuation)], [(context ids, continuation ids)],
    why it cannot be scored or None). A skipped question keeps no requests."""
    items = []
    for q, q_shots in zip(questions, shots):
        style = style_for(q, options.prompt_style)
        prompt = build_prompt(q, q_shots, style, options.chat)
        conts = [(frozenset(), style.label_sep + q.reference)] if q.open_ended else continuations(q, style)
        items.append(loglik_item(lm, q, prompt, conts))
    return items


def loglik_item(lm, q: Question, prompt: str, conts: list) -> tuple[Question, str, list, list, str | None]:
    """One question's item (see loglik_items): its requests, or why they do not fit the model."""
    max_length = getattr(getattr(lm, "config", None), "max_position_embeddings", None) or 1 << 62
    requests = [tokenize_pair(lm.tokenizer, prompt, text) for _, text in conts]
    longest = max(len(continuation) for _, continuation in requests)
    if longest >= max_length:
        return (q, prompt, conts, [], f"its {'reference answer' if q.open_ended else 'longest option'} "
                f"of {longest} tokens leaves no room for the prompt in the model's {max_length} positions")
    return q, prompt, conts, requests, None


def run_loglik(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
               options: EvalOptions) -> list[dict]:
    return score_items(lm, loglik_items(lm, questions, shots, options), options, "loglik")


def score_items(lm, items, options: EvalOptions, method: str) -> list[dict]:
    """Scores every item's continuations in shared batches; the prediction record per question."""
    requests = [r for *_, item_requests, _ in items for r in item_requests]
    scored = iter(score_requests(
        lm, requests, options.batch_size, on_batch=progress_counter(options.progress, f"{method} batches")))
    predictions = []
    for q, prompt, conts, _, skipped in items:
        if skipped:
            predictions.append({"task": q.task, "id": q.id, "source": q.source, "prompt": prompt,
                                "skipped": skipped})
            continue
        results = [next(scored) for _ in conts]
        logprobs = [r.logprob for r in results]
        record = {"task": q.task, "id": q.id, "source": q.source, "prompt": prompt,
                  "continuations": [text for _, text in conts], "logprobs": logprobs,
                  "num_tokens": [r.num_tokens for r in results]}
        if any(r.truncated for r in results):
            record["truncated_context_tokens"] = max(r.truncated for r in results)
        if q.open_ended:
            record.update(gold=q.reference, pred=None,
                          logprob_per_token=logprobs[0] / results[0].num_tokens)
        else:
            best = max(range(len(conts)), key=lambda i: logprobs[i])
            best_norm = max(range(len(conts)), key=lambda i: logprobs[i] / len(conts[i][1].strip() or " "))
            record.update(gold=answer_text(q.answer), pred=answer_text(conts[best][0]),
                          pred_norm=answer_text(conts[best_norm][0]),
                          correct=conts[best][0] == q.answer, correct_norm=conts[best_norm][0] == q.answer)
        predictions.append(record)
    return predictions
