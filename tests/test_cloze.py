"""The cloze method: the question without its options, each option's text scored as the answer.

Real MedQA and PubMedQA items from ../shared/data through the harness's own reader; the model is a
scripted stand-in (no JAX): byte tokens, and logits that teacher-force one chosen continuation after
the last answer cue, so we know which option's text it favours.
"""
import json

import numpy as np
import pytest

from medjax.eval.harness import evaluate
from medjax.eval.methods.cloze import MULTI_SKIPPED, cloze_items
from medjax.eval.options import EvalOptions
from medjax.eval.prompts import EN, build_cloze_prompt
from medjax.eval.tasks import load_split
from shared_data import shared_data

VOCAB = 259  # 3 special ids + one per byte


class ByteTokenizer:
    bos_id, eos_id, pad_id, vocab_size, chat_template, hf = 1, 2, 0, VOCAB, None, None

    def encode(self, text):
        return [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids):
        return bytes(int(i) - 3 for i in ids if int(i) >= 3).decode("utf-8", errors="ignore")


class FavouringLM:
    """After the last `cue` of a row, the model is sure of the next token of `favour(row text)`
    (a continuation string, or None: uniform) as long as the row still follows it."""

    def __init__(self, favour, cue="Answer:"):
        self.tokenizer, self.favour = ByteTokenizer(), favour
        self.cue = self.tokenizer.encode(cue)

    def logits(self, ids_BxT):
        ids_BxT = np.asarray(ids_BxT)
        logits = np.zeros(ids_BxT.shape + (VOCAB,), np.float32)
        for r, row in enumerate(ids_BxT.tolist()):
            target = self.favour(self.tokenizer.decode(row))
            cues = [i for i in range(len(row)) if row[i:i + len(self.cue)] == self.cue]
            if target is None or not cues:
                continue
            target, start = self.tokenizer.encode(target), cues[-1] + len(self.cue)
            for t in range(start - 1, min(len(row), start - 1 + len(target))):
                done = row[start:t + 1]
                if target[:len(done)] == done:
                    logits[r, t, target[len(done)]] = 12.0
        return logits


@pytest.fixture(scope="module")
def medqa():
    return load_split("medqa", shared_data("benchmarks"), "sample").questions[:6]


def test_cloze_prompt_shows_the_stem_not_the_options(medqa):
    lm = FavouringLM(lambda text: None)
    for q, prompt, conts, requests, skipped in cloze_items(lm, medqa, [[] for _ in medqa], EvalOptions()):
        assert skipped is None and len(requests) == len(q.options)
        assert prompt == f"The following are questions about medicine.\n\nQuestion: {q.question}\nAnswer:"
        assert not any(f"{label}. {text}" in prompt for label, text in q.options.items())
        assert conts == [(frozenset(label), " " + text) for label, text in q.options.items()]
    chat = cloze_items(lm, medqa[:1], [[]], EvalOptions(chat=lambda user: f"[INST] {user} [/INST]"))[0][1]
    assert chat == (f"[INST] The following are questions about medicine.\n\nQuestion: {medqa[0].question} "
                    "[/INST] Answer:")


def test_cloze_shots_answer_with_the_gold_options_text(medqa):
    prompt = build_cloze_prompt(medqa[0], medqa[1:3], EN)
    for shot in medqa[1:3]:
        (gold,) = shot.answer
        assert f"Question: {shot.question}\nAnswer: {shot.options[gold]}\n\n" in prompt
        assert not any(f"\n{label}. " in prompt for label in shot.options)
    assert prompt.endswith(f"Question: {medqa[0].question}\nAnswer:")


def test_the_favoured_options_text_is_the_prediction(medqa, tmp_path):
    # Favour the gold option for even questions, the next option for odd ones.
    favoured = {}
    for i, q in enumerate(medqa):
        labels, (gold,) = list(q.options), q.answer
        favoured[q.question] = labels[(labels.index(gold) + i % 2) % len(labels)]
    texts = {q.question: " " + q.options[favoured[q.question]] for q in medqa}
    lm = FavouringLM(lambda text: next(t for stem, t in texts.items() if stem in text))
    report = evaluate(lm, "medqa", shared_data("benchmarks"), method="cloze", split="sample", limit=len(medqa),
                      output=str(tmp_path / "r.json"), progress=lambda _: None)
    lines = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    for q, line in zip(medqa, lines):
        right = favoured[q.question] in q.answer
        assert (line["gold"], line["pred"], line["pred_norm"]) == ("".join(q.answer),) + (favoured[q.question],) * 2
        assert line["correct"] is line["correct_norm"] is right and line["method"] == "cloze"
        assert line["continuations"] == [" " + text for text in q.options.values()]
    result = report["tasks"]["medqa"]
    assert result["accuracy"] == result["acc_norm"] == 0.5 and result["n"] == len(medqa)


def test_multi_answer_questions_are_skipped_with_the_reason(tmp_path):
    folder = tmp_path / "cmexam"
    folder.mkdir()
    (folder / "val.csv").write_text('Question,Options,Answer,Explanation\n'
                                    'q1,"A 甲\\nB 乙\\nC 丙\\nD 丁",ACD,e\nq2,"A 发热\\nB 咳嗽",B,e\n', encoding="utf-8")
    lm = FavouringLM(lambda text: "咳嗽", cue="答案：")
    report = evaluate(lm, "cmexam", str(tmp_path), method="cloze", output=str(tmp_path / "r.json"),
                      progress=lambda _: None)
    multi, single = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    assert multi["skipped"] == MULTI_SKIPPED and "correct" not in multi
    assert single["prompt"] == "以下是医学考试的题目。\n\n题目：q2\n答案："
    assert single["continuations"] == ["发热", "咳嗽"] and single["pred"] == "B" and single["correct"]
    assert report["tasks"]["cmexam"]["skipped"] == 1 and report["tasks"]["cmexam"]["n"] == 1


def test_word_labels_score_exactly_as_loglik(tmp_path):
    lm = FavouringLM(lambda text: " no")
    records = {}
    for method in ("loglik", "cloze"):
        evaluate(lm, "pubmedqa", shared_data("benchmarks"), method=method, limit=2,
                 output=str(tmp_path / f"{method}.json"), progress=lambda _: None)
        records[method] = [{k: v for k, v in json.loads(line).items() if k != "method"}
                           for line in open(tmp_path / f"{method}.predictions.jsonl")]
    assert records["cloze"] == records["loglik"]
    assert [r["pred"] for r in records["cloze"]] == ["no", "no"]
