"""The published recipes as one-command configs: AntGLM-Med (cp -> ift -> ta, VoC beside loglik) and
HuatuoGPT-II's one stage (unified data + SFT under priority sampling), and the report of a real run."""
import collections
import filecmp
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from medjax.assets import default_paths
from medjax.assets.build_recipe_data import DEFAULT_OUTPUT_DIR, build, recipe_paths
from medjax.assets.knowledge import CONDITIONS
from medjax.data.config import data_config
from medjax.data.encode import EncodeOptions, encode_record
from medjax.data.formats import to_record
from medjax.data.mixture import MixtureSampler, parse_sources
from medjax.data.pipeline import build_train_iterator
from medjax.data.readers import read_rows
from medjax.data.templates import get_template
from medjax.data.tokenizer import load_tokenizer
from medjax.eval.continuation_scorer import tokenize_pair
from medjax.eval.prompts import build_prompt, continuations, style_for
from medjax.eval.tasks import get_task, load_split
from run_main import run_main
from shared_data import shared_data
from medjax.train.config import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(workdir, config, *flags):
    return run_main(workdir, config, *flags, timeout=600)


# every stage a few steps, the benchmark on a few questions: the whole recipe, offline, in under a minute
FAST = ["--config.export_hf=False", "--config.eval.limit=4", "--config.train.eval_batches=1",
        "--config.train.eval_every=0"]


@pytest.fixture(scope="module")
def antglm_run(tmp_path_factory):
    """ift a few steps; cp long enough (20 steps) that ta's 100 steps learn the embedded PubMedQA (from 3 cp
    steps they do not); every stage's benchmark on the whole test fold (72 questions), VoC arguments short."""
    workdir = tmp_path_factory.mktemp("antglm_med")
    out = main(workdir, "configs/antglm_med.py", "--config.cp.steps=20", "--config.ift.steps=3",
               "--config.eval.max_reason_tokens=4", "--config.export_hf=False", "--config.train.eval_batches=1",
               "--config.train.eval_every=0")
    return workdir, out


def test_antglm_med_runs_three_stages_each_from_its_parent(antglm_run):
    workdir, out = antglm_run
    stages = json.load(open(workdir / "summary.json"))["stages"]
    assert list(stages) == ["cp", "ift", "ta"]
    parents = {s: json.load(open(workdir / s / "lineage.json"))["parent"] for s in stages}
    assert parents == {"cp": "scratch", "ift": f"ckpt:{workdir}/cp", "ta": f"ckpt:{workdir}/ift"}
    assert json.load(open(workdir / "cp" / "model_config.json"))["family"] == "glm"  # AntGLM is a GLM
    # task adaptation drew its batches from the benchmark's own training file
    assert set(stages["ta"]["token_counts"]) == {"pubmedqa_nontest"}


def test_antglm_med_reports_voc_beside_loglik_in_one_table(antglm_run):
    workdir, out = antglm_run
    assert "accuracy by method" in out and "loglik" in out and "voc" in out
    by_method = json.load(open(workdir / "summary.json"))["stages"]["ta"]["benchmark"]["by_method"]
    assert set(by_method) == {"loglik", "voc"} and by_method["voc"]["pubmedqa"]["n"] == 72
    assert json.load(open(workdir / "ta" / "eval.json"))["method"] == "loglik"
    assert json.load(open(workdir / "ta" / "eval.voc.json"))["method"] == "voc"


def test_antglm_med_task_adaptation_raises_the_held_out_accuracy(antglm_run):
    """ta learns to read the embedded PubMedQA abstracts: on the 72 test questions (conditions no ta
    record asks about) its log-likelihood accuracy clearly beats ift's and the majority class."""
    workdir, _ = antglm_run
    stages = json.load(open(workdir / "summary.json"))["stages"]
    ift, ta = (stages[s]["benchmark"]["by_method"]["loglik"]["pubmedqa"] for s in ("ift", "ta"))
    assert ta["split"] == "test" and ta["n"] == 72
    assert ta["accuracy"] >= ift["accuracy"] + 0.15 and ta["accuracy"] >= ta["majority"] + 0.15, (ift, ta)


def test_report_renders_from_the_antglm_run(antglm_run):
    from PIL import Image

    workdir, _ = antglm_run
    proc = subprocess.run([sys.executable, "-m", "medjax.report", str(workdir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = workdir / "report" / "index.html"
    assert str(index) in proc.stdout
    page = index.read_text()
    for stage in ("cp", "ift", "ta"):
        assert f"<td>{stage}</td>" in page
    assert "accuracy (loglik)" in page and "accuracy (voc)" in page
    for png in ("losses.png", "accuracy.png", "token_shares.png", "lineage.png"):
        assert f"src='{png}'" in page
        pixels = np.asarray(Image.open(workdir / "report" / png).convert("L"), np.float32)
        assert pixels.shape[0] > 100 and (pixels < 200).mean() > 0.01, f"{png} is blank"


def test_task_adaptation_records_are_token_for_token_the_evaluation_prompt():
    """A ta record (benchmark:pubmedqa:FILE, template plain) trains exactly on what loglik scores: BOS +
    the zero-shot prompt as context, the gold label's continuation tokens (+ EOS) as the only targets."""
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    seq_len = load_config_file(os.path.join(ROOT, "configs", "antglm_med.py")).train.seq_len
    spec = f"benchmark:pubmedqa:{recipe_paths()['pubmedqa_nontest']}"
    questions = get_task("pubmedqa").read(recipe_paths()["pubmedqa_nontest"], "pubmedqa")
    options = EncodeOptions(template=get_template("plain"))
    rows = list(read_rows(spec))
    assert len(rows) == len(questions) == 474
    for (row, origin), q in list(zip(rows, questions))[:20]:
        doc = encode_record(to_record(row, origin), "sft", tokenizer, options)
        style = style_for(q)
        gold = next(text for labels, text in continuations(q, style) if labels == q.answer)
        context, continuation = tokenize_pair(tokenizer, build_prompt(q, [], style), gold)
        assert doc.ids.tolist() == context + continuation + [tokenizer.eos_id], origin
        assert doc.trained.tolist() == [False] * len(context) + [True] * (len(continuation) + 1)
    longest = max(len(encode_record(to_record(row, origin), "sft", tokenizer, options).ids) for row, origin in rows)
    assert longest <= seq_len, f"the longest ta record has {longest} tokens: raise antglm_med.py's train.seq_len"


def _pubmedqa_folds():
    directory = recipe_paths()["benchmarks_dir"]
    return {split: load_split("pubmedqa", directory, split) for split in ("test", "nontest")}


def _asked_condition(q) -> str:
    """The condition a rendered PubMedQA question asks about (the longest knowledge-base name in it)."""
    named = [c.name for c in CONDITIONS if re.search(rf"\b{re.escape(c.name)}\b", q.question, re.IGNORECASE)]
    assert named, q.source
    return max(named, key=len).lower()


def test_embedded_pubmedqa_is_read_by_the_harness_with_its_official_folds():
    """ori_pqal.json + test_ground_truth.json split by the harness as the real files are: test = the
    ground truth's PMIDs (72 questions), nontest = the rest, which is exactly pqal_nontest.json (what ta
    trains on); records carry the real file's keys in its order; labels balanced (majority = 1/3)."""
    folds = _pubmedqa_folds()
    directory = os.path.join(recipe_paths()["benchmarks_dir"], "pubmedqa")
    truth = json.load(open(os.path.join(directory, "test_ground_truth.json")))
    assert folds["test"].files[-1].endswith("test_ground_truth.json")
    assert {q.id: next(iter(q.answer)) for q in folds["test"].questions} == truth and len(truth) == 72
    nontest = json.load(open(recipe_paths()["pubmedqa_nontest"]))
    assert [q.id for q in folds["nontest"].questions] == list(nontest) and len(nontest) == 474
    everything = json.load(open(os.path.join(directory, "ori_pqal.json")))
    assert set(everything) == set(truth) | set(nontest) and not set(truth) & set(nontest)
    assert all(everything[pmid] == record for pmid, record in nontest.items())
    real = json.load(open(shared_data("benchmarks/pubmedqa/pqal_nontest.json")))
    real_keys = list(next(iter(real.values())))
    assert all(list(r) == real_keys for r in everything.values())
    for fold in folds.values():
        counts = collections.Counter(next(iter(q.answer)) for q in fold.questions)
        assert set(counts) == {"yes", "no", "maybe"} and len(set(counts.values())) == 1


def test_embedded_pubmedqa_test_fold_asks_about_conditions_training_never_asks_about():
    folds = _pubmedqa_folds()
    asked = {split: {_asked_condition(q) for q in fold.questions} for split, fold in folds.items()}
    assert len(asked["test"]) == 24 and not asked["test"] & asked["nontest"]
    assert not {q.question for q in folds["test"].questions} & {q.question for q in folds["nontest"].questions}


def _best_single_word_rule(questions) -> float:
    """The best accuracy of a rule "word W in the contexts -> label A, else label B" over all W, A, B."""
    labels = [next(iter(q.answer)) for q in questions]
    totals = collections.Counter(labels)
    with_word = collections.defaultdict(collections.Counter)
    for q, y in zip(questions, labels):
        for w in set(re.findall(r"[a-z]+", q.context.lower())):
            with_word[w][y] += 1
    return max(with_word[w][a] + totals[b] - with_word[w][b] for w in with_word for a in totals for b in totals
               if a != b) / len(questions)


def test_embedded_pubmedqa_answers_are_read_from_varied_wordings():
    """No single word of the abstract gives the answer (the best one-word rule stays below 0.5, majority
    being 1/3), and the abstract reports on the treatment the question asks about."""
    folds = _pubmedqa_folds()
    questions = folds["nontest"].questions + folds["test"].questions
    assert _best_single_word_rule(questions) < 0.5
    treatments = {c.treatment.lower() for c in CONDITIONS}
    for q in questions:
        asked = max((t for t in treatments if t in q.question.lower()), key=len)
        assert asked in q.context.lower(), q.source


def test_pubmedqa_training_split_reads_in_its_own_format():
    path = shared_data("benchmarks/pubmedqa/pqal_nontest.json")
    rows = list(read_rows(f"benchmark:pubmedqa:{path}"))
    row, origin = rows[0]
    assert "(PMID " in origin and row["messages"][0]["content"].startswith("The following are questions about")
    assert row["messages"][0]["content"].endswith("\nAnswer:") and row["messages"][1]["content"] in ("yes", "no",
                                                                                                       "maybe")


def test_a_bad_benchmark_spec_names_what_is_wrong():
    from medjax.data.records import DataError

    with pytest.raises(DataError, match="unknown task 'medqq'"):
        list(read_rows("benchmark:medqq:x.jsonl"))
    with pytest.raises(DataError, match="no such file"):
        list(read_rows("benchmark:medqa:/nonexistent/train.jsonl"))
    with pytest.raises(DataError, match="expected benchmark:TASK:PATH"):
        list(read_rows("benchmark:medqa"))


def test_huatuo2_priority_sampling_drains_higher_priority_sources_first():
    """Over one pass of the config's own sources, each source's draws come on average earlier the higher
    its priority: web 32 > literature 16 > encyclopedia 8 > books 4 > SFT 1 (x3)."""
    c = load_config_file(os.path.join(ROOT, "configs", "huatuo2_one_stage.py"))
    specs = parse_sources(c.adapt.data.train)
    assert [(s.name, s.priority) for s in specs] == [("web", 32), ("literature", 16), ("encyclopedia", 8),
                                                     ("books", 4), ("sft", 1)]
    sizes = [sum(1 for _ in read_rows(s.path)) for s in specs]
    sampler = MixtureSampler(specs, sizes, seed=0)
    total = sum(n * s.epochs for n, s in zip(sizes, specs))
    draws = np.array([sampler.next()[0] for _ in range(total)])
    mean_position = [np.flatnonzero(draws == i).mean() / total for i in range(len(specs))]
    assert mean_position == sorted(mean_position), dict(zip([s.name for s in specs], mean_position))
    assert mean_position[0] < 0.15 and mean_position[-1] > 0.5
    assert np.bincount(draws).tolist() == [n * s.epochs for n, s in zip(sizes, specs)]  # SFT 3x, the rest once


def test_huatuo2_unified_record_trains_on_its_output_only():
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    c = load_config_file(os.path.join(ROOT, "configs", "huatuo2_one_stage.py"))
    with open(recipe_paths()["unified/web"]) as f:
        record = json.loads(f.readline())
    answer = record["conversations"][1]["value"]
    cfg = data_config(train=[dict(c.adapt.data.train[0], path=recipe_paths()["unified/web"])], eval=[],
                      shuffle=False, pack_buffer=1)
    it = build_train_iterator(cfg, tokenizer, kind=c.adapt.kind, seq_len=256, batch_size=1, seed=0,
                              model_family="llama")
    batch = next(it)
    first = batch["segment_ids"][0] == 1
    trained = batch["loss_mask"][0][first] > 0
    targets = batch["targets"][0][first][trained]
    assert tokenizer.decode([t for t in targets if t != tokenizer.eos_id]).strip() == answer
    assert targets[-1] == tokenizer.eos_id and not trained[:len(trained) // 2].all()


def test_huatuo2_one_stage_runs_offline(tmp_path):
    out = main(tmp_path, "configs/huatuo2_one_stage.py", "--config.train.steps=3", *FAST)
    stages = json.load(open(tmp_path / "summary.json"))["stages"]
    assert list(stages) == ["adapt"] and "benchmark accuracy: medqa=" in out
    assert json.load(open(tmp_path / "adapt" / "lineage.json"))["parent"] == "scratch"
    assert set(stages["adapt"]["token_counts"]) <= {"web", "literature", "encyclopedia", "books", "sft"}


def test_committed_recipe_data_matches_a_fresh_build(tmp_path):
    build(str(tmp_path))
    compared = filecmp.dircmp(DEFAULT_OUTPUT_DIR, tmp_path)
    stack, differ = [compared], []
    while stack:
        d = stack.pop()
        differ += d.left_only + d.right_only + d.diff_files
        stack += d.subdirs.values()
    assert not differ, f"rerun python -m medjax.assets.build_recipe_data: {differ}"
