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
    tokens IFT trains on are the tokens loglik scores (with eval.chat_template=as_trained)."""
    c = load_config_file(CONFIG)
    assert stage_chat_template(c, "ift") == "auto" and stage_chat_template(c, "cp") is None
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    template = default_template(tokenizer, "llama")
    chat = chat_renderer("auto", tokenizer, "llama")
    assert len(records) >= 1500
    letters = {answer[-1] for _, answer in records}
    assert letters == set("ABCD")
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


def _field(text: str) -> str:
    """Which field (name, test, treatment) of the knowledge base an option's text is."""
    [field] = {f for c in knowledge.CONDITIONS for f in ("name", "test", "treatment")
               if getattr(c, f).lower() == text.lower()}
    return field


def test_every_instruction_record_fits_the_default_rows():
    """System turn included: sft truncation would cut the end, a multiple-choice record's answer."""
    c = load_config_file(CONFIG)
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    template = default_template(tokenizer, "llama")
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    longest = 0
    for key in ("sft_train", "sft_eval"):
        with open(default_paths()[key], encoding="utf-8") as f:
            for line in f:
                turns = [{"role": roles[t["from"]], "content": t["value"]} for t in json.loads(line)["conversations"]]
                longest = max(longest, sum(len(p) + len(r) for p, r in encode_turns(turns, template, tokenizer)))
    assert longest <= c.train.seq_len


def _asked(stem: str) -> tuple[knowledge.Condition, str]:
    """(condition, field) a knowledge question's stem asks for: the diagnosis of a vignette (every
    symptom of one condition listed), else the test or treatment of the condition it names."""
    vignette = [c for c in knowledge.CONDITIONS if all(s in stem for s in c.symptoms)]
    if vignette:
        [c] = vignette
        return c, "name"
    [c] = [c for c in knowledge.CONDITIONS if re.search(rf"\b{re.escape(c.name)}\b", stem)]
    question = re.split(r"(?<=[.?]) ", stem)[-1]
    return c, "test" if re.search(r"\btest\b|investigation|confirm", question) else "treatment"


def _stated(question: Question) -> list[str]:
    """The letters of the options whose text the stem states (a reading question states one)."""
    return [letter for letter, text in question.options.items() if text.lower() in question.question.lower()]


def test_multiple_choice_answers_are_right_balanced_and_cover_every_kind(records):
    asked = {"name": 0, "treatment": 0, "test": 0}
    letters = dict.fromkeys("ABCD", 0)
    reading = 0
    for user, answer in records:
        question = _question(user)
        letters[answer[-1]] += 1
        stated = _stated(question)
        if stated:  # a reading question: the option it states, which is a fact of the knowledge base
            assert stated == [answer[-1]], user
            reading += 1
            asked[_field(question.options[answer[-1]])] += 1
            continue
        c, field = _asked(question.question)
        asked[field] += 1
        right = [letter for letter, text in question.options.items()
                 if text.lower() == getattr(c, field).lower()]
        assert right == [answer[-1]], user
    assert min(asked.values()) >= 400, asked
    # The cheap binding lesson: one reading question in three, for every condition and kind.
    assert len(records) / 4 < reading < len(records) / 2
    # every letter is right equally often (up to the held-out split): no letter is a better guess
    assert max(letters.values()) - min(letters.values()) < 0.03 * len(records), letters
