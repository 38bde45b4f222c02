"""Verification-of-Choice (AntGLM-Med, arXiv 2312.01040) for multiple-choice questions.

The paper's idea, as far as its text can be read: instead of asking for one answer, make the
model argue for every option in turn, then have it verify those arguments, and answer with the
option whose argument survives verification best. Our exact procedure:

1. Argue: for each option X, one greedy generation from
   "<header> <question + options> Proposed answer: X. <text>  Explain why ... is correct:".
2. Verify: for each option, the prompt "<question + options> Proposed answer: X. <text>
   Argument: <argument>  Is this argument correct? ... Answer:" is scored by log-likelihood of the
   continuations " yes" and " no" (Chinese style: "是" / "否"); the verification score is
   log p(yes) - log p(no).
3. Choose: the option with the highest score (ties: the earlier option). For a multi-answer
   question every option with a positive score (the model leans to "yes"), or the best one if
   none is positive.

Choices we made where the paper leaves room: verification is read from log-likelihoods rather
than from a generated verdict, so that scores are comparable across options and never
unparseable; arguments are greedy and zero-shot (few-shot examples only enter the question
display when shots > 0, as plain question/answer pairs).
"""
from __future__ import annotations

from typing import Sequence

from medjax.eval.continuation_scorer import score_requests, tokenize_pair
from medjax.eval.generation import generate_texts, stop_strings
from medjax.eval.options import EvalOptions
from medjax.eval.progress import progress_counter
from medjax.eval.prompts import EN, Style, answer_text, body, header, shot_text, style_for
from medjax.eval.question import Question

_ARGUE = {"en": "Proposed answer: {option}\nExplain why this proposed answer is correct:",
          "zh": "假设答案是：{option}\n请解释为什么这个答案是正确的："}
_VERIFY = {"en": "Proposed answer: {option}\nArgument: {argument}\n"
                 "Is this argument correct? Answer yes or no.\nAnswer:",
           "zh": "假设答案是：{option}\n论证：{argument}\n这个论证是否正确？请回答“是”或“否”。\n答案："}
_VERDICTS = {"en": (" yes", " no"), "zh": ("是", "否")}


def _lang(style: Style) -> str:
    return "en" if style is EN else "zh"


def _option(q: Question, label: str) -> str:
    """"C. Report the physician" for lettered options; PubMedQA's words stand alone."""
    text = q.options[label]
    return label if text == label else f"{label}. {text}"


def _wrap(user: str, options: EvalOptions) -> str:
    return options.chat(user) if options.chat is not None else user


def choose(scores: dict[str, float], multi: bool) -> frozenset[str]:
    best = max(scores, key=lambda label: scores[label])  # max keeps the first of equal scores
    if multi:
        positive = frozenset(label for label, s in scores.items() if s > 0)
        return positive or frozenset([best])
    return frozenset([best])


def run_voc(lm, questions: Sequence[Question], shots: Sequence[Sequence[Question]],
            options: EvalOptions) -> list[dict]:
    if any(q.open_ended for q in questions):
        raise ValueError(f"method 'voc' needs multiple-choice questions; {questions[0].task} is open-ended")
    styles = [style_for(q, options.prompt_style) for q in questions]
    stems = [header(q, st) + "\n\n" + "".join(shot_text(s, st) for s in q_shots) + body(q, st)
             for q, q_shots, st in zip(questions, shots, styles)]
    pairs = [(i, label) for i, q in enumerate(questions) for label in q.options]
    argue_prompts = [_wrap(stems[i] + _ARGUE[_lang(styles[i])].format(option=_option(questions[i], label)), options)
                     for i, label in pairs]
    arguments = generate_texts(lm, argue_prompts, options, options.max_reason_tokens,
                               stops=stop_strings(styles[0]), label="voc argument batches")
    verify_prompts = [_wrap(stems[i] + _VERIFY[_lang(styles[i])].format(
        option=_option(questions[i], label), argument=argument.strip()), options)
        for (i, label), argument in zip(pairs, arguments)]
    requests = [tokenize_pair(lm.tokenizer, prompt, verdict)
                for (i, _), prompt in zip(pairs, verify_prompts) for verdict in _VERDICTS[_lang(styles[i])]]
    scored = score_requests(lm, requests, options.batch_size,
                            on_batch=progress_counter(options.progress, "voc verification batches"))
    per_question: list[dict] = [{} for _ in questions]
    for n, ((i, label), argue, argument, verify) in enumerate(
            zip(pairs, argue_prompts, arguments, verify_prompts)):
        yes, no = scored[2 * n], scored[2 * n + 1]
        per_question[i][label] = {"argue_prompt": argue, "argument": argument, "verify_prompt": verify,
                                  "logprob_yes": yes.logprob, "logprob_no": no.logprob,
                                  "score": yes.logprob - no.logprob}
    predictions = []
    for q, details in zip(questions, per_question):
        pred = choose({label: d["score"] for label, d in details.items()}, q.multi)
        predictions.append({
            "task": q.task, "id": q.id, "source": q.source, "gold": answer_text(q.answer),
            "pred": answer_text(pred), "correct": pred == q.answer,
            "verification": {label: d["score"] for label, d in details.items()}, "options": details})
    return predictions
