"""Multi-stage runs: CP -> IFT lineage, the embedded default, real weights and real data."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.hf_fixtures import make_hf_llama, torch_logits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def main(workdir, *flags, config="configs/cp_ift.py"):
    cmd = [sys.executable, "-m", "medjax.main", f"--config={config}", f"--workdir={workdir}", *flags]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_cp_then_ift_short_run_prints_the_summary_table(tmp_path):
    out = main(tmp_path, "--config.model.preset=test", "--config.cp.steps=4", "--config.ift.steps=4",
               "--config.train.seq_len=64", "--config.train.batch_size=4", "--config.eval.limit=8",
               "--config.train.eval_batches=2")
    assert "summary (" in out and "benchmark accuracy: medqa=" in out
    summary = json.load(open(tmp_path / "summary.json"))["stages"]
    assert list(summary) == ["cp", "ift"]
    lineage = json.load(open(tmp_path / "ift" / "lineage.json"))
    assert lineage["parent"] == f"ckpt:{tmp_path}/cp"
    assert os.path.exists(tmp_path / "ift" / "hf" / "model.safetensors")
    # a second run of the same command finds both stages finished and trains nothing more
    again = main(tmp_path, "--config.model.preset=test", "--config.cp.steps=4", "--config.ift.steps=4",
                 "--config.train.seq_len=64", "--config.train.batch_size=4", "--config.eval.limit=8",
                 "--config.train.eval_batches=2")
    assert "training steps" not in again


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
    """The README command as is: both stages' eval loss ends well below where it started."""
    main(tmp_path)
    for stage in json.load(open(tmp_path / "summary.json"))["stages"].values():
        assert stage["last_eval_loss"] < 0.8 * stage["first_eval_loss"]
