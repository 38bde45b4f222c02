"""The embedded default data (medjax/assets): present, well-formed, right, and reproducible."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest

from medjax.assets import DEFAULT_DIR, default_paths
from medjax.assets import knowledge, preference_pairs
from medjax.assets.distractors import content_words, pick_distractors
from medjax.data import readers
from medjax.data.tokenizer import load_tokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MEDQA = os.path.join(REPO_ROOT, "..", "shared", "data", "benchmarks", "medqa_usmle",
                            "sample.jsonl")
BY_NAME = {c.name: c for c in knowledge.CONDITIONS}


def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _documents(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.endswith("\n") and not text.endswith("\n\n\n"), path
    return text.strip("\n").split("\n\n")


def _corpus_files():
    d = default_paths()["cp_train"]
    return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".txt")]


def _all_files(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, _, names in os.walk(root) for n in names)


# -- paths and sizes ----------------------------------------------------------------------------

def test_default_paths_are_absolute_and_exist():
    paths = default_paths()
    assert set(paths) == {"tokenizer", "cp_train", "cp_eval", "sft_train", "sft_eval",
                          "pref_train", "pref_eval", "benchmarks_dir"}
    for key, path in paths.items():
        assert os.path.isabs(path), key
        assert os.path.exists(path), f"{key}: {path}"
    assert os.path.isdir(paths["cp_train"]) and os.path.isdir(paths["benchmarks_dir"])
    assert paths["tokenizer"].endswith("tokenizer.model")


def test_default_data_is_small():
    total = sum(os.path.getsize(os.path.join(DEFAULT_DIR, f)) for f in _all_files(DEFAULT_DIR))
    assert total < 2 * 1024 * 1024


def test_knowledge_base_is_valid_and_errors_name_the_condition():
    knowledge.validate()
    assert 60 <= len(knowledge.CONDITIONS) <= 110
    bad = knowledge.Condition(name="asthma", system="lungs", definition="x", symptoms=("a",) * 3,
                              test="t", treatment="t", ages=(1, 2))
    with pytest.raises(ValueError, match="'asthma': unknown system 'lungs'"):
        knowledge.validate([bad])
    with pytest.raises(ValueError, match="appears twice"):
        knowledge.validate([knowledge.CONDITIONS[0], knowledge.CONDITIONS[0]])


def test_distractors_never_share_a_drug_or_a_meaningful_word():
    pneumonia = BY_NAME["community-acquired pneumonia"]
    wrong = pick_distractors(pneumonia, knowledge.CONDITIONS, "treatment", 3, random.Random(0),
                             same_system=False)
    assert not any(re.search(r"antibiotic|cillin|doxycycline|nitrofurantoin", w.treatment)
                   for w in wrong)
    assert "antibacterial" in content_words("penicillin V") & content_words("amoxicillin")
    with pytest.raises(ValueError, match="only 0 safe distractors for 'asthma'"):
        pick_distractors(BY_NAME["asthma"], [BY_NAME["asthma"]], "name", 1, random.Random(0),
                         same_system=True)


# -- continued-pretraining text -----------------------------------------------------------------

def test_corpus_documents_are_single_paragraphs_of_ascii_text():
    files = _corpus_files()
    assert len(files) >= 3
    train = [doc for f in files for doc in _documents(f)]
    held_out = _documents(default_paths()["cp_eval"])
    assert len(train) > 500 and len(held_out) >= 20
    for doc in train + held_out:
        assert doc.strip() == doc and "\n" not in doc and doc.isascii(), doc[:80]
        assert len(doc) > 100
    assert not set(train) & set(held_out), "held-out documents leaked into training"
    assert len(set(train)) == len(train)


def test_corpus_reads_as_documents_with_the_data_readers():
    rows = list(readers.read_rows(default_paths()["cp_train"], text_unit="paragraph"))
    assert len(rows) == sum(len(_documents(f)) for f in _corpus_files())
    assert all(set(row) == {"text"} for row, _ in rows)


# -- instruction records ------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["sft_train", "sft_eval"])
def test_sft_records_are_sharegpt(key):
    records = _jsonl(default_paths()[key])
    assert len(records) >= (300 if key == "sft_train" else 20)
    for i, r in enumerate(records):
        assert set(r) == {"conversations"}, (key, i)
        roles = [t["from"] for t in r["conversations"]]
        if roles[0] == "system":
            roles = roles[1:]
        assert roles and roles == ["human", "gpt"] * (len(roles) // 2), (key, i, roles)
        for t in r["conversations"]:
            assert set(t) == {"from", "value"} and t["value"].strip() == t["value"] != ""
    if key == "sft_train":
        assert any(len(r["conversations"]) > 3 for r in records if
                   r["conversations"][0]["from"] == "human"), "no multi-turn dialogue"


def test_sft_has_system_turns_and_no_train_eval_overlap():
    train, held_out = (_jsonl(default_paths()[k]) for k in ("sft_train", "sft_eval"))
    assert any(r["conversations"][0]["from"] == "system" for r in train)
    as_text = lambda rs: {json.dumps(r, sort_keys=True) for r in rs}  # noqa: E731
    assert not as_text(train) & as_text(held_out)


# The multiple-choice records (right answers, the evaluation's prompt shape): test_default_ift_benchmark.py


# -- preference pairs ---------------------------------------------------------------------------

def _situation(pair: dict):
    """The preference situation whose safe answers hold the pair's chosen one, or None."""
    return next((s for s in preference_pairs.SITUATIONS if pair["chosen"] in s.safe), None)


def _asked_about(question: str, situation) -> str | None:
    """The condition a preference question asks about, or None."""
    return next((c.name for c in knowledge.CONDITIONS for q in situation.questions
                 if question == q.format(name=c.name)), None)


def test_preference_pairs_prefer_the_safe_advice_and_hold_out_conditions_and_wordings():
    splits = {key: _jsonl(default_paths()[key]) for key in ("pref_train", "pref_eval")}
    assert len(splits["pref_train"]) >= 200 and len(splits["pref_eval"]) >= 30
    conditions, answers = {}, {}
    for key, pairs in splits.items():
        conditions[key], answers[key] = set(), set()
        for i, p in enumerate(pairs):
            assert set(p) == {"conversations", "chosen", "rejected"}, (key, i)
            (turn,) = p["conversations"]
            assert turn["from"] == "human"
            situation = _situation(p)
            assert situation is not None and p["rejected"] in situation.unsafe, (key, i)
            name = _asked_about(turn["value"], situation)
            assert name is not None, f"{key}[{i}]: unrecognised question {turn['value']!r}"
            conditions[key].add(name)
            answers[key] |= {p["chosen"], p["rejected"]}
    # held out: conditions no training pair asks about, answers training never shows
    assert not conditions["pref_train"] & conditions["pref_eval"]
    assert not answers["pref_train"] & answers["pref_eval"]


# -- benchmark ----------------------------------------------------------------------------------

def _benchmark():
    return _jsonl(os.path.join(default_paths()["benchmarks_dir"], "medqa_usmle", "sample.jsonl"))


def test_benchmark_follows_the_medqa_format():
    questions = _benchmark()
    assert 50 <= len(questions) <= 100
    if os.path.exists(SHARED_MEDQA):  # the real MedQA sample, when this checkout has it
        with open(SHARED_MEDQA, encoding="utf-8") as f:
            real = json.loads(f.readline())
        assert all(list(q) == list(real) for q in questions)
    for i, q in enumerate(questions):
        assert list(q["options"]) == ["A", "B", "C", "D"], i
        assert q["answer"] == q["options"][q["answer_idx"]], i
        assert len(set(q["options"].values())) == 4, i
        assert q["meta_info"] in ("step1", "step2&3"), i
        assert q["metamap_phrases"] and all(isinstance(p, str) for p in q["metamap_phrases"])
    assert len({q["answer_idx"] for q in questions}) == 4, "answers all in one position"


def test_benchmark_answers_agree_with_the_knowledge_base():
    facts = {}
    for c in knowledge.CONDITIONS:
        for fact in (c.name, c.test, c.treatment):
            facts.setdefault(fact[:1].upper() + fact[1:], set()).add(c.name)
    for i, q in enumerate(_benchmark()):
        about = [c for c in knowledge.CONDITIONS
                 if re.search(rf"\b{re.escape(c.name)}\b", q["question"])
                 or all(s in q["question"] for s in c.symptoms)]
        assert len(about) == 1, (i, [c.name for c in about])
        assert about[0].name in facts[q["answer"]], i
        for letter, option in q["options"].items():
            if letter != q["answer_idx"]:
                assert about[0].name not in facts[option], (i, letter)


def test_benchmark_is_held_out_from_training_prompts():
    prompts = {t["value"] for k in ("sft_train", "sft_eval") for r in _jsonl(default_paths()[k])
               for t in r["conversations"] if t["from"] == "human"}
    prompts |= {p["conversations"][0]["value"] for k in ("pref_train", "pref_eval")
                for p in _jsonl(default_paths()[k])}
    for q in _benchmark():
        stem = q["question"].rsplit(". ", 1)[0]
        assert not any(stem in p for p in prompts), q["question"]


# -- tokenizer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(default_paths()["tokenizer"])


def test_tokenizer_special_ids(tokenizer):
    assert 1024 <= tokenizer.vocab_size <= 2048
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (1, 2, 3)
    assert tokenizer.token_to_id("<pad>") == 3
    assert tokenizer.token_to_id("<unk>") == 0


def test_tokenizer_round_trips_default_and_unseen_text(tokenizer):
    texts = _documents(default_paths()["cp_eval"])[:20]
    texts += [t["value"] for r in _jsonl(default_paths()["sft_eval"])[:10]
              for t in r["conversations"]]
    texts += ["Dose: 2.5 mg twice daily\n\tthen stop.", "Fièvre et toux, 发烧 (fever) 🌡"]
    for text in texts:
        ids = tokenizer.encode(text)
        assert 0 not in ids, f"<unk> in {text!r}"  # byte fallback covers everything
        assert tokenizer.decode(ids) == text
    ids = tokenizer.encode(_documents(default_paths()["cp_eval"])[0])
    assert len(_documents(default_paths()["cp_eval"])[0]) / len(ids) > 3, "tokenizer too weak"


# -- reproducibility ----------------------------------------------------------------------------

def test_regenerating_gives_byte_identical_files(tmp_path):
    out = tmp_path / "default"
    subprocess.run([sys.executable, "-m", "medjax.assets.build_default_data",
                    f"--output_dir={out}"], check=True, cwd=REPO_ROOT, capture_output=True)
    assert _all_files(out) == _all_files(DEFAULT_DIR)
    for rel in _all_files(DEFAULT_DIR):
        with open(os.path.join(DEFAULT_DIR, rel), "rb") as a, open(out / rel, "rb") as b:
            assert a.read() == b.read(), f"{rel} differs: run python -m medjax.assets.build_default_data"
