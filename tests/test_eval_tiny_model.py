"""End to end on a tiny random transformers LLaMA (real llama2 tokenizer) loaded through `hf:`.

The loglik parity test re-scores every prediction line with the torch model directly, from the
line's own `prompt` and `continuations`, as anyone re-checking our numbers would.
"""
import json
import os

import numpy as np
import pytest

from hf_fixtures import make_hf_llama
from medjax.eval.harness import evaluate

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "benchmarks")
SHARED_FOLDERS = ("medqa_usmle", "medmcqa", "pubmedqa", "mmlu_medical", "cmmlu_medical", "ceval_medical",
                  "cmexam", "cmb_clin")
ALL_TASKS = "medqa,medmcqa,pubmedqa,mmlu_medical,cmmlu_medical,ceval_medical,cmexam,cmb_clin,cmb"
CMB_EXAM = [  # CMB-Exam layout (its files are not in ../shared): one single- and one multi-answer item
    {"exam_type": "医师考试", "exam_class": "执业医师", "exam_subject": "临床", "question": "夜间阵发性呼吸困难，可见于",
     "answer": "E", "question_type": "单项选择题",
     "option": {"A": "急性脑血管疾病", "B": "癔病", "C": "急性感染所致的毒血症", "D": "慢性阻塞性肺气肿", "E": "左心功能不全"}},
    {"exam_type": "专业知识考试", "exam_class": "中医学与中药学", "exam_subject": "中医学", "question": "肝主疏泄，主要表现在",
     "answer": "BCDE", "question_type": "多项选择题",
     "option": {"A": "通调水道", "B": "调畅气机", "C": "助脾运化", "D": "条达情志", "E": "调节生殖功能"}},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import medjax

    directory = str(tmp_path_factory.mktemp("tiny_llama"))
    torch_model = make_hf_llama(directory, seed=3, tokenizer=True, vocab_size=32000, max_position_embeddings=4096)
    return directory, torch_model, medjax.load("hf:" + directory)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    for folder in SHARED_FOLDERS:
        os.symlink(os.path.abspath(os.path.join(SHARED, folder)), root / folder)
    (root / "cmb" / "CMB-val").mkdir(parents=True)
    (root / "cmb" / "CMB-val" / "CMB-val-merge.json").write_text(json.dumps(CMB_EXAM, ensure_ascii=False))
    return str(root)


def _torch_logprob(model, tokenizer, prompt, continuation):
    """Independent re-scoring: BOS + tokens of prompt+continuation, the continuation being what
    follows the tokens shared with the prompt alone; float64 log-softmax of the torch logits."""
    import torch

    context = [tokenizer.bos_token_id] + tokenizer.encode(prompt, add_special_tokens=False)
    whole = [tokenizer.bos_token_id] + tokenizer.encode(prompt + continuation, add_special_tokens=False)
    n = next((i for i, (a, b) in enumerate(zip(context, whole)) if a != b), min(len(context), len(whole)))
    n = min(n, len(whole) - 1)
    with torch.no_grad():
        logits = model(torch.tensor([whole[:-1]])).logits[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[i - 1, whole[i]] for i in range(n, len(whole))))


def test_loglik_matches_transformers_on_all_benchmarks(tiny, data_dir, tmp_path):
    from transformers import AutoTokenizer

    directory, torch_model, lm = tiny
    output = str(tmp_path / "loglik.json")
    report = evaluate(lm, ALL_TASKS, data_dir, limit=2, batch_size=4, output=output)
    assert set(report["tasks"]) == set(ALL_TASKS.split(","))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    lines = [json.loads(line) for line in open(tmp_path / "loglik.predictions.jsonl")]
    assert len(lines) == 2 * 8 + len(CMB_EXAM)
    for line in lines:
        ours = np.asarray(line["logprobs"])
        theirs = np.asarray([_torch_logprob(torch_model, tokenizer, line["prompt"], c) for c in line["continuations"]])
        # Options (a letter, a word) must agree to 1e-4. A CMB-Clin reference answer is hundreds of
        # tokens long, so float32 rounding adds up over its sum: there we hold each token to 1e-4.
        tolerance = 1e-4 * (max(line["num_tokens"]) if line["task"] == "cmb_clin" else 1)
        np.testing.assert_allclose(ours, theirs, atol=tolerance, rtol=0, err_msg=f"{line['task']} {line['id']}")
        if line["task"] != "cmb_clin":
            assert int(np.argmax(ours)) == int(np.argmax(theirs)), (line["task"], line["id"])
    multi = next(line for line in lines if line["task"] == "cmb" and line["gold"] == "BCDE")
    assert len(multi["continuations"]) == 31  # every non-empty set of the five options


def test_cli_generate_writes_report_and_predictions(tiny, data_dir, tmp_path):
    from absl import flags

    from medjax import evaluate as cli

    directory, _, _ = tiny
    output = tmp_path / "gen.json"
    argv = ["evaluate", f"--model=hf:{directory}", "--tasks=medqa,cmexam", f"--data_dir={data_dir}",
            "--method=generate", "--limit=2", "--max_new_tokens=3", f"--output={output}"]
    flags.FLAGS(argv)
    try:
        cli.main(argv[:1])
    finally:
        flags.FLAGS.unparse_flags()
    report = json.loads(output.read_text())
    assert report["model"] == f"hf:{directory}" and report["method"] == "generate"
    for task in ("medqa", "cmexam"):
        result = report["tasks"][task]
        assert result["n"] == 2 and 0 <= result["unparseable"] <= 2 and result["files"]
    lines = [json.loads(line) for line in open(tmp_path / "gen.predictions.jsonl")]
    assert {"task", "id", "gold", "pred", "output", "prompt"} <= set(lines[0])


def test_cot_and_voc_run_on_the_tiny_model(tiny, data_dir, tmp_path):
    _, _, lm = tiny
    cot = evaluate(lm, "medqa", data_dir, method="cot", limit=1, cot_samples=3, max_reason_tokens=4,
                   output=str(tmp_path / "cot.json"))
    (line,) = [json.loads(x) for x in open(tmp_path / "cot.predictions.jsonl")]
    assert len(line["paths"]) == 3 and sum(line["votes"].values()) <= 3
    assert cot["tasks"]["medqa"]["n"] == 1
    evaluate(lm, "pubmedqa", data_dir, method="voc", limit=1, max_reason_tokens=4,
             output=str(tmp_path / "voc.json"))
    (line,) = [json.loads(x) for x in open(tmp_path / "voc.predictions.jsonl")]
    scores = line["verification"]
    assert set(scores) == {"yes", "no", "maybe"} and line["pred"] == max(scores, key=scores.get)


def test_compiled_gather_equals_scoring_from_full_logits(tiny):
    from medjax.eval.continuation_scorer import score_requests, tokenize_pair

    _, _, lm = tiny

    class LogitsOnly:  # the same model seen only through lm.logits (the numpy path)
        tokenizer = lm.tokenizer
        logits = staticmethod(lm.logits)

    requests = [tokenize_pair(lm.tokenizer, "Question: Which nerve?\nAnswer:", c) for c in (" A", " B", " maybe so")]
    fast, slow = score_requests(lm, requests, batch_size=4), score_requests(LogitsOnly(), requests, batch_size=4)
    np.testing.assert_allclose([s.logprob for s in fast], [s.logprob for s in slow], atol=1e-4)
    assert [s.greedy for s in fast] == [s.greedy for s in slow]
