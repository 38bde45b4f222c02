"""Prompt text for every method, in an English ("Answer:") and a Chinese ("答案：") style.

A prompt is: header, the few-shot examples (each a question followed by its gold answer), then
the question and the answer cue. Loglik scores the option label as the continuation right after
the cue: " B" in English style (a space, as the shots write it), "B" in Chinese style; PubMedQA's
labels are its words (" yes"). With a chat template the header, shots and question become one
user message rendered by `medjax.data.templates.render_prompt`, and the cue follows it.
The cloze prompt (method cloze) leaves the option lines out: each option's text is then scored
as the answer, and its shots answer with their gold option's text.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

from medjax.eval.question import Question

STYLES = ("en", "zh")


@dataclasses.dataclass(frozen=True)
class Style:
    question: str
    context: str
    cue: str
    label_sep: str  # between the cue and the answer label
    mc_header: str
    multi_header: str
    word_header: str
    open_header: str
    cloze_header: str  # no options shown: each option's text is scored as the answer
    think: str  # chain-of-thought trigger placed after the cue


EN = Style(
    question="Question: ", context="Context: ", cue="Answer:", label_sep=" ",
    mc_header="The following are multiple choice questions about medicine. Answer with the letter "
              "of the correct option.",
    multi_header="The following are multiple choice questions about medicine; some have several "
                 "correct options. Answer with the letters of all correct options.",
    word_header="The following are questions about biomedical research abstracts. Answer each "
                "with yes, no, or maybe.",
    open_header="The following are clinical case questions. Answer each based on the case.",
    cloze_header="The following are questions about medicine.",
    think=" Let's think step by step.")

ZH = Style(
    question="题目：", context="病例：", cue="答案：", label_sep="",
    mc_header="以下是医学考试的单项选择题，请给出正确答案的选项字母。",
    multi_header="以下是医学考试的选择题，部分题目有多个正确答案，请给出所有正确答案的选项字母。",
    word_header="以下是关于生物医学研究摘要的问题，请用 yes、no 或 maybe 回答。",
    open_header="以下是临床病例分析题，请根据病例回答问题。",
    cloze_header="以下是医学考试的题目。",
    think="让我们一步一步地思考。")


def style_for(question: Question, prompt_style: str = "auto") -> Style:
    if prompt_style == "auto":
        prompt_style = question.language
    if prompt_style not in STYLES:
        raise ValueError(f"prompt style must be 'auto' or one of {STYLES}, got {prompt_style!r}")
    return EN if prompt_style == "en" else ZH


def header(question: Question, style: Style) -> str:
    if question.open_ended:
        return style.open_header
    if not letter_labels(question):
        return style.word_header
    return style.multi_header if question.multi else style.mc_header


def body(question: Question, style: Style, with_options: bool = True) -> str:
    """The question with its context and (lettered) options, without the answer cue."""
    lines = []
    if question.context:
        lines.append(style.context + question.context)
    lines.append(style.question + question.question)
    if with_options and letter_labels(question):
        lines += [f"{label}. {text}" for label, text in question.options.items()]
    return "\n".join(lines) + "\n"


def answer_text(labels) -> str:
    """Labels as the model should write them: "B", "ACD", "yes"."""
    return "".join(sorted(labels))


def continuations(question: Question, style: Style) -> list[tuple[frozenset[str], str]]:
    """(labels, continuation text) scored after the cue: one per option, or for a multi-answer
    question one per non-empty subset of options (exact-set scoring needs every candidate set)."""
    labels = list(question.options)
    if question.multi:
        sets = [frozenset(c) for r in range(1, len(labels) + 1) for c in itertools.combinations(labels, r)]
    else:
        sets = [frozenset([label]) for label in labels]
    return [(s, style.label_sep + answer_text(s)) for s in sets]


def shot_text(shot: Question, style: Style) -> str:
    gold = shot.reference if shot.open_ended else answer_text(shot.answer)
    return body(shot, style) + style.cue + style.label_sep + gold + "\n\n"


def build_prompt(question: Question, shots: Sequence[Question], style: Style, chat=None,
                 suffix: str = "") -> str:
    """Header + shots + question + cue (+ suffix, e.g. the chain-of-thought trigger).

    `chat` is None or a callable turning the user text into the rendered chat prompt.
    """
    user = header(question, style) + "\n\n" + "".join(shot_text(s, style) for s in shots) + body(question, style)
    return _with_cue(user, style, chat, suffix)


def cloze_answer(shot: Question) -> str:
    """A shot's gold answer as cloze writes it: its gold option's text (texts joined by "; " for a
    multi-answer shot), else its label word or reference."""
    if shot.open_ended:
        return shot.reference
    if not letter_labels(shot):
        return answer_text(shot.answer)
    return "; ".join(text for label, text in shot.options.items() if label in shot.answer)


def build_cloze_prompt(question: Question, shots: Sequence[Question], style: Style, chat=None) -> str:
    """Cloze header + shots answered with their option's text + the question without its options + cue."""
    shots_text = "".join(body(s, style, with_options=False) + style.cue + style.label_sep + cloze_answer(s) + "\n\n"
                         for s in shots)
    return _with_cue(style.cloze_header + "\n\n" + shots_text + body(question, style, with_options=False),
                     style, chat)


def _with_cue(user: str, style: Style, chat, suffix: str = "") -> str:
    """The user text (rendered as one user message when `chat` is given) followed by the cue."""
    if chat is not None:
        rendered = chat(user.rstrip("\n"))
        return rendered + ("" if rendered[-1:].isspace() else " ") + style.cue + suffix
    return user + style.cue + suffix


def chat_renderer(template_name: str, tokenizer, model_family: str | None = None):
    """A callable user_text -> rendered prompt using the data pipeline's chat templates.

    "auto" picks the tokenizer's own template, else the model family's (as training does).
    """
    from medjax.data.templates import default_template, get_template, render_prompt

    template = default_template(tokenizer, model_family) if template_name == "auto" else get_template(template_name)

    def render(user_text: str) -> str:
        return render_prompt([{"role": "user", "content": user_text}], template, tokenizer)

    return render


def letter_labels(question: Question) -> bool:
    return all(len(label) == 1 and label.isupper() for label in question.options)
