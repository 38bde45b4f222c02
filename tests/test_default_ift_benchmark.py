"""The embedded default's IFT data teaches the task its end-of-stage benchmark asks: multiple-choice
records in the evaluation's own prompt shapes (lettered for loglik, without options for cloze), answered
as the evaluation scores them, and right."""
from __future__ import annotations

import json
import os
import re

import pytest

from medjax.assets import default_paths, knowledge
from medjax.data.templates import default_template, encode_turns
from medjax.data.tokenizer import load_tokenizer
from medjax.eval.continuation_scorer import tokenize_pair
from medjax.eval.prompts import EN, build_cloze_prompt, build_prompt, chat_renderer
from medjax.eval.question import Question
from medjax.train.benchmarks import stage_chat_template
from medjax.train.config import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "cp_ift.py")


def _records(key: str) -> list[tuple[str, str]]:
    """(user text, answer) of the last exchange of every record in the file."""
    with open(default_paths()[key], encoding="utf-8") as f:
        turns = [json.loads(line)["conversations"] for line in f]
    return [(t[-2]["value"], t[-1]["value"]) for t in turns]


def _question(user: str) -> Question:
    """The benchmark question a lettered record's user text asks (header, "Question: " stem, A-D lines)."""
    head, rest = user.split(f"\n\n{EN.question}", 1)
    assert head == EN.mc_header, user
    stem, *lines = rest.split("\n")
    options = dict(line.split(". ", 1) for line in lines)
    assert list(options) == ["A", "B", "C", "D"], user
    return Question(id="", task="medqa", source="", question=stem, options=options, answer=frozenset(), language="en")


def _cloze_question(user: str) -> Question:
    """The question a cloze record's user text asks (the cloze header, "Question: " stem, no options)."""
    head, stem = user.split(f"\n\n{EN.question}", 1)
    assert head == EN.cloze_header and "\n" not in stem, user
    return Question(id="", task="medqa", source="", question=stem, options={}, answer=frozenset(), language="en")


@pytest.fixture(scope="module")
def all_records():
    return _records("sft_train") + _records("sft_eval")


@pytest.fixture(scope="module")
def records(all_records):
    """The lettered multiple-choice records: the answer is the evaluation's cue and a letter."""
    return [(user, answer) for user, answer in all_records if re.fullmatch(rf"{EN.cue}{EN.label_sep}[ABCD]", answer)]


@pytest.fixture(scope="module")
def cloze_records(all_records):
    return [(user, answer) for user, answer in all_records if user.startswith(EN.cloze_header + "\n\n")]


@pytest.fixture(scope="module")
def chat():
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    return tokenizer, default_template(tokenizer, "llama"), chat_renderer("auto", tokenizer, "llama")


def test_multiple_choice_records_are_the_evaluations_prompt_and_scored_answer(records, chat):
    """User text + the cue is build_prompt's text, and the answer is the cue and one letter, so the
    tokens IFT trains on are the tokens loglik scores (with eval.chat_template=as_trained)."""
    c = load_config_file(CONFIG)
    assert stage_chat_template(c, "ift") == "auto" and stage_chat_template(c, "cp") is None
    tokenizer, template, render = chat
    assert len(records) >= 500
    letters = {answer[-1] for _, answer in records}
    assert letters == set("ABCD")
    for user, answer in records:
        question = _question(user)
        assert build_prompt(question, [], EN, chat=lambda text: text) == f"{user} {EN.cue}"
        [(prompt_ids, response_ids)] = encode_turns([{"role": "user", "content": user},
                                                     {"role": "assistant", "content": answer}],
                                                    template, tokenizer)
        context, letter = tokenize_pair(tokenizer, build_prompt(question, [], EN, chat=render),
                                        EN.label_sep + answer[-1])
        assert context + letter == prompt_ids + response_ids[:-1], user  # all but the stop token


def test_cloze_records_are_the_cloze_prompt_and_the_option_text_it_scores(cloze_records, chat):
    """User text + the cue is build_cloze_prompt's text and the answer is the cue and the option's text,
    so IFT trains on the tokens the cloze method (the config's headline) scores."""
    c = load_config_file(CONFIG)
    assert c.eval.method.split(",")[0] == "cloze"
    tokenizer, template, render = chat
    assert len(cloze_records) >= 1500
    for user, answer in cloze_records:
        question = _cloze_question(user)
        assert build_cloze_prompt(question, [], EN, chat=lambda text: text) == f"{user} {EN.cue}"
        cue, text = answer.split(EN.label_sep, 1)
        assert cue == EN.cue and text == text.strip() and text[0].isupper(), answer
        [(prompt_ids, response_ids)] = encode_turns([{"role": "user", "content": user},
                                                     {"role": "assistant", "content": answer}],
                                                    template, tokenizer)
        context, option = tokenize_pair(tokenizer, build_cloze_prompt(question, [], EN, chat=render),
                                        EN.label_sep + text)
        assert context + option == prompt_ids + response_ids[:-1], user


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


def test_multiple_choice_answers_are_right_balanced_and_cover_every_kind(records, cloze_records):
    asked = {"name": 0, "treatment": 0, "test": 0}
    letters = dict.fromkeys("ABCD", 0)
    for user, answer in records:
        question = _question(user)
        letters[answer[-1]] += 1
        c, field = _asked(question.question)
        asked[field] += 1
        right = [letter for letter, text in question.options.items()
                 if text.lower() == getattr(c, field).lower()]
        assert right == [answer[-1]], user
    for user, answer in cloze_records:
        c, field = _asked(_cloze_question(user).question)
        asked[field] += 1
        assert answer == f"{EN.cue}{EN.label_sep}{getattr(c, field)[0].upper()}{getattr(c, field)[1:]}", user
    assert min(asked.values()) >= 400, asked
    # every letter is right equally often (up to the held-out split and the draws): no letter is a better guess
    assert max(letters.values()) - min(letters.values()) < 0.06 * len(records), letters
