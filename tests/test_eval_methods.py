"""Mechanics of generate / cot / voc / loglik batching with a scripted stand-in model (no JAX).

The fake model tokenises by character, so prompts and continuations are easy to read back, and
its logits are chosen by the test: a model whose behaviour we script lets us check the counting,
voting and choosing of each method exactly.
"""
import json
import os

import numpy as np
import pytest

from medjax.eval.continuation_scorer import score_requests, tokenize_pair
from medjax.eval.harness import evaluate
from medjax.eval.methods.cot import majority_vote
from medjax.eval.methods.voc import choose

VOCAB = 512


class CharTokenizer:
    bos_id, eos_id, pad_id, vocab_size, chat_template, hf = 1, 2, 0, VOCAB, None, None

    def __init__(self):
        self._ids, self._chars = {}, {}

    def encode(self, text):
        out = []
        for ch in text:
            if ch not in self._ids:
                self._ids[ch] = 3 + len(self._ids)
                self._chars[self._ids[ch]] = ch
                assert self._ids[ch] < VOCAB
            out.append(self._ids[ch])
        return out

    def decode(self, ids):
        return "".join(self._chars.get(int(i), "") for i in ids)


class ScriptedLM:
    """generate: reply(prompt_text, call_index) -> text. logits: bonus(row_text) -> {char: logit}."""

    def __init__(self, reply=None, bonus=None):
        self.tokenizer = CharTokenizer()
        self.reply, self.bonus = reply, bonus
        self.generated_prompts, self.logits_calls = [], []

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, top_p=1.0, top_k=0, seed=0, eos_id=None):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            out.append(self.tokenizer.encode(self.reply(text, len(self.generated_prompts))) + [eos_id])
            self.generated_prompts.append(text)
        return out

    def logits(self, ids_BxT):
        ids_BxT = np.asarray(ids_BxT)
        self.logits_calls.append(ids_BxT.shape)
        logits = np.zeros(ids_BxT.shape + (VOCAB,), np.float32)
        if self.bonus is not None:
            for r, row in enumerate(ids_BxT):
                for ch, value in self.bonus(self.tokenizer.decode(row)).items():
                    logits[r, :, self.tokenizer.encode(ch)[0]] += value
        return logits


def mc_questions(tmp_path, n=3):
    rows = [{"question": f"Question number {i}?", "options": {k: f"choice {k.lower()}{i}" for k in "ABCD"},
             "answer_idx": "ABCD"[i % 4], "answer": ""} for i in range(n)]
    folder = tmp_path / "medqa_usmle"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp_path)


def test_generate_counts_unparseable_and_never_defaults(tmp_path):
    replies = ["The answer is B.", "I cannot tell.", "C. choice c2"]
    lm = ScriptedLM(reply=lambda text, i: replies[i])
    report = evaluate(lm, "medqa", mc_questions(tmp_path), method="generate", output=str(tmp_path / "r.json"),
                      progress=lambda _: None)
    result = report["tasks"]["medqa"]
    assert result["n"] == 3 and result["unparseable"] == 1
    lines = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    assert [p["pred"] for p in lines] == ["B", None, "C"]
    assert [p["gold"] for p in lines] == ["A", "B", "C"]
    assert result["accuracy"] == pytest.approx(1 / 3)


def test_cot_samples_k_paths_and_takes_the_majority(tmp_path):
    k = 4
    paths = ["so the answer is B", "the answer is C", "hmm, answer is B", "no idea"]
    lm = ScriptedLM(reply=lambda text, i: paths[i % k])
    report = evaluate(lm, "medqa", mc_questions(tmp_path, n=2), method="cot", cot_samples=k,
                      output=str(tmp_path / "r.json"), progress=lambda _: None)
    assert len(lm.generated_prompts) == 2 * k  # k reasoning paths per question
    assert all(p.endswith("Answer: Let's think step by step.") for p in lm.generated_prompts)
    lines = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    assert lines[0]["votes"] == {"B": 2, "C": 1} and lines[0]["pred"] == "B"
    assert lines[0]["path_answers"] == ["B", "C", "B", None]
    assert report["cot_samples"] == k and report["tasks"]["medqa"]["accuracy"] == 0.5  # gold A, B


def test_majority_vote_ties_go_to_the_earliest_path():
    assert majority_vote(["C", "B", "B", "C"]) == ("C", {"C": 2, "B": 2})
    assert majority_vote([None, None]) == (None, {})


@pytest.mark.parametrize("favoured", ["A", "C", "D"])
def test_voc_argues_every_option_and_picks_the_best_verified(tmp_path, favoured):
    strength = {"A": 0.5, "B": 1.0, "C": 1.5, "D": 2.0}
    strength[favoured] = 4.0

    def bonus(row_text):  # the verifier leans to "yes" by how strong the option under review is
        label = row_text.rsplit("Proposed answer: ", 1)[1][0]
        return {"y": strength[label], "e": strength[label], "s": strength[label]}

    lm = ScriptedLM(reply=lambda text, i: f"argument {i}", bonus=bonus)
    evaluate(lm, "medqa", mc_questions(tmp_path, n=2), method="voc", output=str(tmp_path / "r.json"),
             progress=lambda _: None)
    assert len(lm.generated_prompts) == 2 * 4  # one argument per option per question
    assert all("Explain why this proposed answer is correct:" in p for p in lm.generated_prompts)
    lines = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    for line in lines:
        scores = line["verification"]
        assert line["pred"] == max(scores, key=scores.get) == favoured
        assert line["options"]["B"]["argument"].startswith("argument ")
        assert "Argument: argument" in line["options"]["B"]["verify_prompt"]


def test_voc_choice_rule():
    assert choose({"A": -1.0, "B": 2.0, "C": 2.0}, multi=False) == {"B"}  # ties: the earlier option
    assert choose({"A": 0.5, "B": -2.0, "C": 1.0}, multi=True) == {"A", "C"}
    assert choose({"A": -0.5, "B": -2.0}, multi=True) == {"A"}


def test_batched_scoring_equals_one_at_a_time_and_shares_rows():
    tok = CharTokenizer()
    bonus = lambda text: {ch: 0.1 * (i % 7) for i, ch in enumerate(sorted(set(text)))}
    requests = [tokenize_pair(tok, prompt, cont) for prompt in ("Question: x?\nAnswer:", "Q2: long y?\nAnswer:")
                for cont in (" A", " B", " C", " maybe")]
    lm = ScriptedLM(bonus=bonus)
    lm.tokenizer = tok
    batched = score_requests(lm, requests, batch_size=4)
    assert len(lm.logits_calls) == 1  # the one-token letters after a prompt share a row: 4 rows
    single = [score_requests(lm, [r], batch_size=1)[0] for r in requests]
    assert [s.logprob for s in batched] == pytest.approx([s.logprob for s in single], abs=1e-9)


def test_unknown_method_and_bad_shots(tmp_path):
    lm, data_dir = ScriptedLM(), mc_questions(tmp_path)
    with pytest.raises(ValueError, match="unknown method"):
        evaluate(lm, "medqa", data_dir, method="guess")
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(lm, "medqa,nope", data_dir)
    with pytest.raises(FileNotFoundError, match="split 'dev'"):  # shots come from a dev split that is missing
        evaluate(lm, "medqa", data_dir, shots=1, progress=lambda _: None)


def test_few_shot_prompts_use_the_same_dev_examples(tmp_path):
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "benchmarks")
    lm = ScriptedLM(bonus=lambda text: {})
    report = evaluate(lm, "mmlu_medical", shared, shots=2, limit=3, output=str(tmp_path / "r.json"),
                      progress=lambda _: None)
    result = report["tasks"]["mmlu_medical"]
    assert result["split"] == "val" and any("/dev/" in f for f in result["files"])
    prompts = [json.loads(line)["prompt"] for line in open(tmp_path / "r.predictions.jsonl")]
    shot_blocks = [p.split("\n\n")[1:3] for p in prompts]
    assert all(blocks == shot_blocks[0] for blocks in shot_blocks)
    assert all(block.startswith("Question: ") and "\nAnswer: " in block for block in shot_blocks[0])


def test_chat_template_wraps_the_prompt(tmp_path):
    lm = ScriptedLM(bonus=lambda text: {})
    evaluate(lm, "medqa", mc_questions(tmp_path, n=1), chat_template="llama2", output=str(tmp_path / "r.json"),
             progress=lambda _: None)
    (line,) = [json.loads(x) for x in open(tmp_path / "r.predictions.jsonl")]
    assert line["prompt"].startswith("[INST] The following are multiple choice questions")
    assert line["prompt"].endswith("D. choice d0 [/INST] Answer:") and line["continuations"][0] == " A"


def test_multi_answer_generation_needs_the_exact_set(tmp_path):
    folder = tmp_path / "cmexam"
    folder.mkdir()
    (folder / "val.csv").write_text(
        'Question,Options,Answer,Explanation\n'
        'q1,"A 甲\\nB 乙\\nC 丙\\nD 丁",ACD,e\nq2,"A 甲\\nB 乙\\nC 丙\\nD 丁",ACD,e\nq3,"A 甲\\nB 乙",B,e\n',
        encoding="utf-8")
    replies = ["答案：A、C、D", "答案：AC", "B"]
    lm = ScriptedLM(reply=lambda text, i: replies[i])
    report = evaluate(lm, "cmexam", str(tmp_path), method="generate", output=str(tmp_path / "r.json"),
                      progress=lambda _: None)
    lines = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl")]
    assert [(p["pred"], p["correct"]) for p in lines] == [("ACD", True), ("AC", False), ("B", True)]
    assert report["tasks"]["cmexam"]["multi_answer_questions"] == 2
    assert "部分题目有多个正确答案" in lines[0]["prompt"] and lines[0]["prompt"].endswith("答案：")


def test_open_ended_generation_is_compared_to_the_reference(tmp_path):
    folder = tmp_path / "cmb_clin"
    folder.mkdir()
    case = {"id": "7", "title": "t", "description": "病人腹痛", "QA_pairs": [
        {"question": "诊断是什么？", "answer": "急性阑尾炎"}, {"question": "如何治疗？", "answer": "手术切除"}]}
    (folder / "CMB-Clin-qa.json").write_text(json.dumps([case], ensure_ascii=False), encoding="utf-8")
    lm = ScriptedLM(reply=lambda text, i: "急性阑尾炎" if "诊断" in text.rsplit("病例：", 1)[1] else "观察")
    report = evaluate(lm, "cmb_clin", str(tmp_path), method="generate", progress=lambda _: None)
    assert report["tasks"]["cmb_clin"]["rouge_l_f1"] == pytest.approx(0.5)  # one exact answer, one miss
    with pytest.raises(ValueError, match="open-ended"):
        evaluate(lm, "cmb_clin", str(tmp_path), method="voc")


def test_long_prompts_lose_their_oldest_context_tokens():
    lm = ScriptedLM(bonus=lambda text: {"B": 1.0})
    lm.config = type("Config", (), {"max_position_embeddings": 12})()
    context, continuation = [1] + lm.tokenizer.encode("a long prompt:"), lm.tokenizer.encode(" B")
    (scored,) = score_requests(lm, [(context, continuation)], batch_size=2)
    assert scored.truncated == len(context) + len(continuation) - 1 - 12
    lm.config.max_position_embeddings = 2
    with pytest.raises(ValueError, match="does not fit"):
        score_requests(lm, [(context, lm.tokenizer.encode(" BBBB"))], batch_size=2)
