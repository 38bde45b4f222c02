"""The embedded default's IFT data teaches the task its end-of-stage benchmark asks: multiple-choice
records in the evaluation's own prompt shape, answered as the evaluation scores them, and right."""
from __future__ import annotations

import json
import os
import re

import pytest

from medjax.assets import default_paths, knowledge
from medjax.data.templates import default_template, encode_turns
from medjax.data.tokenizer import load_tokenizer
from medjax.eval.continuation_scorer import tokenize_pair
from medjax.eval.prompts import EN, build_prompt, chat_renderer
from medjax.eval.question import Question
from medjax.train.benchmarks import stage_chat_template
from medjax.train.config import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "cp_ift.py")


def _multiple_choice(key: str) -> list[tuple[str, str]]:
    """(user text, answer) of the records whose answer is the evaluation's cue and a letter."""
    with open(default_paths()[key], encoding="utf-8") as f:
        turns = [json.loads(line)["conversations"] for line in f]
    return [(t[-2]["value"], t[-1]["value"]) for t in turns if t[-1]["value"].startswith(EN.cue)]


def _question(user: str) -> Question:
    """The benchmark question a record's user text asks (header, "Question: " stem, A-D lines)."""
    head, rest = user.split(f"\n\n{EN.question}", 1)
    assert head == EN.mc_header, user
    stem, *lines = rest.split("\n")
    options = dict(line.split(". ", 1) for line in lines)
    assert list(options) == ["A", "B", "C", "D"], user
    return Question(id="", task="medqa", source="", question=stem, options=options, answer=frozenset(), language="en")


@pytest.fixture(scope="module")
def records():
    return _multiple_choice("sft_train") + _multiple_choice("sft_eval")


def test_multiple_choice_records_are_the_evaluations_prompt_and_scored_answer(records):
    """User text + the cue is build_prompt's text, and the answer is the cue and one letter, so the
    tokens IFT trains on are the tokens loglik scores (with eval.chat_template=as_trained), and the
    record fits the default's rows (sft truncation would cut the answer off)."""
    c = load_config_file(CONFIG)
    assert stage_chat_template(c, "ift") == "auto" and stage_chat_template(c, "cp") is None
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    template = default_template(tokenizer, "llama")
    chat = chat_renderer("auto", tokenizer, "llama")
    assert len(records) >= 500
    letters = {answer[-1] for _, answer in records}
    assert letters == set("ABCD")
    longest = 0
    for user, answer in records:
        assert re.fullmatch(rf"{EN.cue}{EN.label_sep}[ABCD]", answer), answer
        question = _question(user)
        assert build_prompt(question, [], EN, chat=lambda text: text) == f"{user} {EN.cue}"
        [(prompt_ids, response_ids)] = encode_turns([{"role": "user", "content": user},
                                                     {"role": "assistant", "content": answer}],
                                                    template, tokenizer)
        context, letter = tokenize_pair(tokenizer, build_prompt(question, [], EN, chat=chat),
                                        EN.label_sep + answer[-1])
        assert context + letter == prompt_ids + response_ids[:-1], user  # all but the stop token
        longest = max(longest, len(prompt_ids) + len(response_ids))
    assert longest <= c.train.seq_len


def test_multiple_choice_answers_are_right_and_cover_every_kind(records):
    asked = {"diagnosis": 0, "treatment": 0, "test": 0}
    for user, answer in records:
        question = _question(user)
        if question.question.endswith(("Which condition is most likely?", "What is the diagnosis?")):
            # a vignette: the condition whose every symptom it lists
            [c] = [c for c in knowledge.CONDITIONS if all(s in question.question for s in c.symptoms)]
            kind, fact = "diagnosis", c.name
        else:
            [c] = [c for c in knowledge.CONDITIONS if re.search(rf"\b{re.escape(c.name)}\b", question.question)]
            kind = "test" if re.search(r"test|investigation", question.question) else "treatment"
            fact = getattr(c, kind)
        asked[kind] += 1
        right = [letter for letter, text in question.options.items() if text.lower() == fact.lower()]
        assert right == [answer[-1]], user
    assert min(asked.values()) >= 100, asked
