"""Multi-stage runs: CP -> IFT lineage, the embedded default, real weights and real data."""
import json
import os
import shutil

import numpy as np
import pytest

from run_main import run_main
from tests.hf_fixtures import make_hf_llama, torch_logits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def main(workdir, *flags, config="configs/cp_ift.py"):
    return run_main(workdir, config, *flags)


# the embedded default (README command: same model, data, learning rates) with fewer steps
SHORT_DEFAULT = ["--config.cp.steps=20", "--config.ift.steps=20", "--config.eval.limit=8",
                 "--config.train.eval_batches=2"]


@pytest.fixture(scope="module")
def short_default(tmp_path_factory):
    """(workdir, stdout, summary.json's stages as the run left them: a rerun rewrites the file)."""
    workdir = tmp_path_factory.mktemp("cp_ift")
    out = main(workdir, *SHORT_DEFAULT)
    return workdir, out, json.load(open(workdir / "summary.json"))["stages"]


def test_cp_then_ift_short_run_prints_the_summary_table(short_default):
    workdir, out, summary = short_default
    assert "summary (" in out and "benchmark accuracy: medqa=" in out
    assert list(summary) == ["cp", "ift"]
    lineage = json.load(open(workdir / "ift" / "lineage.json"))
    assert lineage["parent"] == f"ckpt:{workdir}/cp"
    assert os.path.exists(workdir / "ift" / "hf" / "model.safetensors")
    assert f"report: {workdir}/report/index.html" in out and os.path.exists(workdir / "report" / "losses.png")
    # a second run of the same command finds both stages finished and trains nothing more
    again = main(workdir, *SHORT_DEFAULT)
    assert "training steps" not in again


def test_embedded_default_learns_in_a_few_steps(short_default):
    """The fast variant of test_embedded_default_learns: 20 + 20 steps instead of 450 + 200."""
    stages = short_default[2]
    assert stages["cp"]["last_eval_loss"] < 0.85 * stages["cp"]["first_eval_loss"], stages["cp"]
    assert stages["ift"]["last_eval_loss"] < 0.97 * stages["ift"]["first_eval_loss"], stages["ift"]


def test_each_stage_writes_its_benchmark_report_to_eval_json(short_default):
    workdir, _, stages = short_default
    for stage in ("cp", "ift"):
        report = json.load(open(workdir / stage / "eval.json"))  # the headline method's; the other beside it
        assert report["model"] == f"ckpt:{workdir}/{stage}" and report["method"] == "cloze"
        assert json.load(open(workdir / stage / "eval.loglik.json"))["tasks"]["medqa"]["n"] == 8
        medqa = report["tasks"]["medqa"]
        assert medqa["n"] == 8 and 0 <= medqa["accuracy"] <= 1 and medqa["files"]  # sha256 of the files read
        assert stages[stage]["benchmark"]["tasks"]["medqa"]["accuracy"] == medqa["accuracy"]
        with open(workdir / stage / "eval.predictions.jsonl") as f:
            assert sum(1 for _ in f) == 8


def test_ift_alone_starts_from_the_final_weights_of_the_workdirs_cp(short_default, tmp_path):
    """--config.stages=ift on a cp_ift config, in a workdir that holds only cp: the parent is WORKDIR/cp
    and IFT retraces the one-command run's IFT stage loss for loss (same starting weights)."""
    workdir, _, stages = short_default
    shutil.copytree(workdir / "cp", tmp_path / "cp")
    out = main(tmp_path, *SHORT_DEFAULT, "--config.stages=ift", "--config.eval.tasks=", "--config.export_hf=False")
    assert "[cp]" not in out and "[ift] training steps 1..20" in out
    assert json.load(open(tmp_path / "ift" / "lineage.json"))["parent"] == f"ckpt:{tmp_path}/cp"
    alone = json.load(open(tmp_path / "summary.json"))["stages"]["ift"]
    for key in ("first_eval_loss", "first_loss", "last_loss", "last_eval_loss"):
        assert alone[key] == pytest.approx(stages["ift"][key], abs=1e-6), key


def test_ift_from_real_hf_weights_on_the_medicalgpt_file(tmp_path):
    """model.init=hf:DIR with its (real LLaMA-2) tokenizer; the HF export loads in transformers."""
    from transformers import LlamaForCausalLM

    import medjax

    hf = str(tmp_path / "base")
    make_hf_llama(hf, seed=5, tokenizer=True, vocab_size=32000)
    sft = os.path.join(SHARED, "corpora", "medicalgpt", "sft", "medical_sft_1K_format.jsonl")
    main(tmp_path / "run", f"--config.model.init=hf:{hf}", f"--config.data.train={sft}", "--config.train.steps=3",
         "--config.train.seq_len=128", "--config.train.batch_size=2", "--config.train.eval_batches=1",
         "--config.data.template=llama2", config="configs/ift.py")
    export = tmp_path / "run" / "ift" / "hf"
    reloaded = LlamaForCausalLM.from_pretrained(str(export), attn_implementation="eager").eval()
    ids = np.array([[1, 450, 3190, 338, 263]])
    ours = medjax.load(f"ckpt:{tmp_path}/run").logits(ids)
    np.testing.assert_allclose(torch_logits(reloaded, ids), ours, atol=1e-4)
    assert medjax.load(f"hf:{export}").tokenizer.vocab_size == 32000


@pytest.mark.slow
def test_embedded_default_learns(tmp_path):
    """The README command as is: both stages' eval loss ends well below where it started, and after IFT
    the benchmark's headline accuracy (cloze) is clearly above chance and the majority class (0.77
    against 0.25 and 0.32, measured) and above CP's (0.37)."""
    main(tmp_path)
    stages = json.load(open(tmp_path / "summary.json"))["stages"]
    for stage in stages.values():
        assert stage["last_eval_loss"] < 0.8 * stage["first_eval_loss"]
    cp, ift = (stages[s]["benchmark"]["by_method"]["cloze"]["medqa"] for s in ("cp", "ift"))
    assert ift["n"] == 60 and ift["accuracy"] >= max(ift["chance"], ift["majority"]) + 0.15, ift
    assert ift["accuracy"] > cp["accuracy"], (cp, ift)
