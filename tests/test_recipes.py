"""The published recipes as one-command configs: AntGLM-Med (cp -> ift -> ta, VoC beside loglik) and
HuatuoGPT-II's one stage (unified data + SFT under priority sampling), and the report of a real run."""
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
from medjax.eval.tasks import get_task
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
    workdir = tmp_path_factory.mktemp("antglm_med")
    out = main(workdir, "configs/antglm_med.py", "--config.cp.steps=3", "--config.ift.steps=3",
               "--config.ta.steps=3", "--config.eval.max_reason_tokens=8", "--config.eval.batch_size=8",
               "--config.train.batch_size=2", *FAST)
    return workdir, out


def test_antglm_med_runs_three_stages_each_from_its_parent(antglm_run):
    workdir, out = antglm_run
    stages = json.load(open(workdir / "summary.json"))["stages"]
    assert list(stages) == ["cp", "ift", "ta"]
    parents = {s: json.load(open(workdir / s / "lineage.json"))["parent"] for s in stages}
    assert parents == {"cp": "scratch", "ift": f"ckpt:{workdir}/cp", "ta": f"ckpt:{workdir}/ift"}
    assert json.load(open(workdir / "cp" / "model_config.json"))["family"] == "glm"  # AntGLM is a GLM
    # task adaptation drew its batches from the benchmark's own training file
    assert set(stages["ta"]["token_counts"]) == {"medqa_train"}


def test_antglm_med_reports_voc_beside_loglik_in_one_table(antglm_run):
    workdir, out = antglm_run
    assert "accuracy by method" in out and "loglik" in out and "voc" in out
    by_method = json.load(open(workdir / "summary.json"))["stages"]["ta"]["benchmark"]["by_method"]
    assert set(by_method) == {"loglik", "voc"} and by_method["voc"]["medqa"]["n"] == 4
    assert json.load(open(workdir / "ta" / "eval.json"))["method"] == "loglik"
    assert json.load(open(workdir / "ta" / "eval.voc.json"))["method"] == "voc"


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
    """A ta record (benchmark:medqa:FILE, template plain) trains exactly on what loglik scores: BOS +
    the zero-shot prompt as context, the gold label's continuation tokens (+ EOS) as the only targets."""
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    spec = f"benchmark:medqa:{recipe_paths()['medqa_train']}"
    questions = get_task("medqa").read(recipe_paths()["medqa_train"], "medqa")
    options = EncodeOptions(template=get_template("plain"))
    rows = list(read_rows(spec))
    assert len(rows) == len(questions) == 120
    for (row, origin), q in list(zip(rows, questions))[:20]:
        doc = encode_record(to_record(row, origin), "sft", tokenizer, options)
        style = style_for(q)
        gold = next(text for labels, text in continuations(q, style) if labels == q.answer)
        context, continuation = tokenize_pair(tokenizer, build_prompt(q, [], style), gold)
        assert doc.ids.tolist() == context + continuation + [tokenizer.eos_id], origin
        assert doc.trained.tolist() == [False] * len(context) + [True] * (len(continuation) + 1)


def _condition_asked(record: dict) -> str:
    """The condition a rendered MedQA question is about: named in a treatment or test stem, else the
    diagnosis it asks for."""
    named = re.search(r"(?:is found to have|The physician suspects) (.+?)\. Which", record["question"])
    return (named.group(1) if named else record["answer"]).lower()


def test_task_adaptation_split_is_decontaminated_from_the_evaluated_questions():
    """No ta training question is an evaluated one, or even about a condition the evaluation asks about."""
    with open(recipe_paths()["medqa_train"]) as f:
        train = [json.loads(line) for line in f]
    with open(os.path.join(default_paths()["benchmarks_dir"], "medqa_usmle", "sample.jsonl")) as f:
        held_out = [json.loads(line) for line in f]
    conditions = {c.name.lower() for c in CONDITIONS}
    assert {_condition_asked(r) for r in train + held_out} <= conditions  # every question maps to one
    assert not {r["question"] for r in train} & {r["question"] for r in held_out}
    assert not {_condition_asked(r) for r in train} & {_condition_asked(r) for r in held_out}


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
