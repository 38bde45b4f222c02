"""`python -m medjax.main --config=configs/ift_lora.py` end to end on a tiny model: the run writes
peft_config.json, its ckpt: loads with adapters, its hf/ export is the merged model, and its adapters
convert to a PEFT directory."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import medjax
from medjax.peft.convert import convert_peft
from medjax.peft.lora import LoRALinear

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.model.preset=test", "--config.train.seq_len=64", "--config.train.batch_size=4",
        "--config.train.steps=4", "--config.train.log_every=1", "--config.train.eval_every=0",
        "--config.train.eval_batches=1", "--config.train.warmup_steps=1", "--config.checkpoint.async_save=False"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ift_lora"))
    cmd = [sys.executable, "-m", "medjax.main", "--config=configs/ift_lora.py", f"--workdir={workdir}", *TINY,
           "--config.peft.targets=q,v,down"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_lora_run_trains_saves_and_exports(lora_run, tmp_path):
    stage = os.path.join(lora_run, "ift")
    with open(os.path.join(stage, "peft_config.json")) as f:
        assert json.load(f)["method"] == "lora"
    with open(os.path.join(stage, "metrics.jsonl")) as f:
        losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses))

    adapted = medjax.load(f"ckpt:{lora_run}")
    assert isinstance(adapted.model.layers.mlp.down, LoRALinear)
    assert np.abs(np.asarray(adapted.model.layers.mlp.down.lora_b[...])).max() > 0
    ids = np.asarray(adapted.tokenizer.encode("Fever and cough for three days."), np.int32)[None, :16]
    merged = medjax.load(f"hf:{os.path.join(stage, 'hf')}")
    np.testing.assert_allclose(merged.logits(ids), adapted.logits(ids), atol=1e-5, rtol=0)

    out = str(tmp_path / "adapter")
    convert_peft(f"ckpt:{lora_run}", f"peft:{out}")
    with open(os.path.join(out, "adapter_config.json")) as f:
        assert sorted(json.load(f)["target_modules"]) == ["down_proj", "q_proj", "v_proj"]


def test_lora_checkpoint_saves_as_a_plain_model(lora_run, tmp_path):
    """LM.save (and convert --dst=hf:/ckpt: without --merge) writes the merged backbone."""
    from medjax.checkpoint.conversion import convert

    adapted = medjax.load(f"ckpt:{lora_run}")
    convert(f"ckpt:{lora_run}", f"hf:{tmp_path}/hf")
    adapted.save(f"ckpt:{tmp_path}/plain")
    ids = np.asarray(adapted.tokenizer.encode("Fever and cough for three days."), np.int32)[None, :16]
    for spec in (f"hf:{tmp_path}/hf", f"ckpt:{tmp_path}/plain"):
        np.testing.assert_allclose(medjax.load(spec).logits(ids), adapted.logits(ids), atol=1e-5, rtol=0)
