"""Prompt construction, loglik continuations, few-shot selection, baselines and report table."""
import dataclasses

import pytest

from medjax.eval.fewshot import select_shots
from medjax.eval.metrics import summarize
from medjax.eval.open_ended import rouge_l_f1
from medjax.eval.prompts import EN, ZH, build_prompt, continuations, style_for
from medjax.eval.question import Question
from medjax.eval.report import format_table, predictions_path


def question(i, answer="B", multi=False, language="en", options="ABCD"):
    return Question(task="t", id=str(i), question=f"question {i}?", options={k: f"opt {k}{i}" for k in options},
                    answer=frozenset(answer), language=language, source=f"f.jsonl:{i}", multi=multi)


def test_english_prompt_with_shots_ends_with_the_cue():
    shots = [question(10, "A"), question(11, "D")]
    prompt = build_prompt(question(1), shots, EN)
    assert prompt.startswith("The following are multiple choice questions about medicine.")
    assert "Question: question 10?\nA. opt A10\n" in prompt
    assert "Answer: A\n\n" in prompt and "Answer: D\n\n" in prompt
    assert prompt.endswith("Question: question 1?\nA. opt A1\nB. opt B1\nC. opt C1\nD. opt D1\nAnswer:")


def test_chinese_style_and_language_switch():
    q = question(1, language="zh")
    assert style_for(q) is ZH and style_for(q, "en") is EN
    prompt = build_prompt(q, [], ZH)
    assert "题目：question 1?" in prompt and prompt.endswith("答案：")
    assert [c for _, c in continuations(q, ZH)] == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="prompt style"):
        style_for(q, "fr")


def test_chat_wrapping_puts_the_cue_after_the_rendered_turn():
    prompt = build_prompt(question(1), [], EN, chat=lambda user: f"[INST] {user} [/INST] ")
    assert prompt.startswith("[INST] The following") and prompt.endswith("[/INST] Answer:")


def test_multi_answer_continuations_cover_every_option_set():
    conts = continuations(question(1, "AC", multi=True, options="ABCDE"), EN)
    assert len(conts) == 31 and (frozenset("AC"), " AC") in conts


def test_pubmedqa_words_are_the_continuations():
    q = Question(task="pubmedqa", id="1", question="q?", options={w: w for w in ("yes", "no", "maybe")},
                 answer=frozenset(["yes"]), language="en", source="x:1", context="abstract")
    prompt = build_prompt(q, [], EN)
    assert "Context: abstract\nQuestion: q?\nAnswer:" in prompt and "A." not in prompt
    assert [c for _, c in continuations(q, EN)] == [" yes", " no", " maybe"]


def test_fixed_shots_are_shared_and_never_the_question_itself():
    pool = [question(i) for i in range(6)]
    shots = select_shots(pool, pool, k=3, seed=0)
    (fixed,) = select_shots([question(99)], pool, k=3, seed=0)  # a question outside the dev split
    for q, s in zip(pool, shots):
        assert len(s) == 3 and q not in s
        assert sum(a is not b for a, b in zip(s, fixed)) <= 1  # at most the one swapped shot differs
    assert select_shots(pool, pool, 3, seed=0) == shots  # reproducible
    assert select_shots(pool, pool, 3, seed=1) != shots
    per_question = select_shots(pool, pool, 3, seed=0, per_question=True)
    assert all(q not in s for q, s in zip(pool, per_question))
    with pytest.raises(ValueError, match="only 2"):
        select_shots([question(9)], pool[:2], k=3, seed=0)


def test_summary_baselines():
    qs = [question(1, "A"), question(2, "A"), question(3, "B"), question(4, "C")]
    preds = [{"pred": "A", "correct": True}, {"pred": None, "correct": False},
             {"pred": "A", "correct": False}, {"pred": "C", "correct": True}]
    s = summarize(qs, preds)
    assert s["accuracy"] == 0.5 and s["unparseable"] == 1 and s["chance"] == 0.25
    assert s["majority"] == 0.5 and s["majority_answer"] == "A"
    multi = summarize([question(1, "AB", multi=True)], [{"pred": "AB", "correct": True}])
    assert multi["chance"] == pytest.approx(1 / 15)


def test_table_and_predictions_path():
    report = {"method": "loglik", "shots": 0, "model": "hf:x", "tasks": {
        "medqa": {"split": "sample", "n": 3, "accuracy": 0.5, "acc_norm": 0.5, "unparseable": 0,
                  "chance": 0.25, "majority": 0.4},
        "cmb_clin": {"split": "test", "n": 2, "rouge_l_f1": 0.125}}}
    table = format_table(report)
    assert "medqa" in table and "0.5000" in table and "0.1250" in table
    assert predictions_path("out/r.json") == "out/r.predictions.jsonl"


def test_rouge_l_on_chinese_characters():
    assert rouge_l_f1("嵌顿性腹股沟斜疝", "嵌顿性腹股沟斜疝") == 1.0
    assert rouge_l_f1("", "诊断") == 0.0
    assert 0 < rouge_l_f1("腹股沟斜疝", "嵌顿性腹股沟斜疝合并肠梗阻") < 1


def test_summary_by_subject():
    qs = [dataclasses.replace(question(i, "A"), subject=s) for i, s in enumerate(["anatomy", "anatomy", "virology"])]
    s = summarize(qs, [{"pred": "A", "correct": True}, {"pred": "B", "correct": False}, {"pred": "A", "correct": True}])
    assert s["by_subject"] == {"anatomy": {"n": 2, "accuracy": 0.5}, "virology": {"n": 1, "accuracy": 1.0}}
