"""Shared helpers of the alignment tests (no tests here): tiny HA configs and reading their metrics."""
import importlib.util
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def tiny_ha(reference: str, lora: bool = False, steps: int = 5, seed: int = 0):
    """configs/ha.py on the `test` model preset: compiles in seconds, one checkpoint at the end."""
    c = load_config("ha")
    c.model.preset = "test"
    c.train.update(steps=steps, seq_len=64, batch_size=4, log_every=1, eval_every=0, eval_batches=2,
                   warmup_steps=1, lr=3e-3, seed=seed)
    c.checkpoint.update(every=steps, async_save=False)
    c.export_hf = False
    c.ha.reference = reference
    if lora:
        c.peft.update(method="lora", rank=4, alpha=8.0, dropout=0.0, targets="attn,mlp")
    return c


def metrics(workdir: str, stage: str = "ha") -> list[dict]:
    """metrics.jsonl rows without timing, lr and grad_norm (compared through the losses)."""
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    drop = ("tokens_per_s", "lr", "grad_norm")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def assert_same_run(a: list[dict], b: list[dict], rtol=2e-5, atol=2e-6):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb)
        for k in ra:
            np.testing.assert_allclose(rb[k], ra[k], rtol=rtol, atol=atol, err_msg=f"step {ra['step']} {k}")
