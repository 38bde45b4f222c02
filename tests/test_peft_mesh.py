"""LoRA and QLoRA through the real trainer on a simulated 8-device mesh (fsdp=8) give the losses of
one device. The pytest process keeps one device, so the runs happen in a subprocess:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/test_peft_mesh.py OUT_DIR [fast|full]
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = {"model.preset": "test", "train.seq_len": 64, "train.batch_size": 8, "train.steps": 3,
             "train.log_every": 1, "train.eval_every": 0, "train.eval_batches": 0, "train.warmup_steps": 1,
             "export_hf": False, "checkpoint.async_save": False, "peft.dropout": 0.0}
# the CI variant: shorter sequences, and 2 steps whose first update is at the full learning rate
FAST = {**OVERRIDES, "train.seq_len": 32, "train.steps": 2, "train.warmup_steps": 0}
MESHES = {"1dev": (1, 1, 1), "1x8x1": (1, 8, 1)}


def run_everywhere(out: str, overrides: dict) -> dict:
    import jax
    import numpy as np

    sys.path.insert(0, ROOT)
    from configs.ift_lora import get_config
    from medjax.parallel.mesh import make_mesh
    from medjax.train.stage import run_stage

    report = {"device_count": jax.device_count()}
    for method in ("lora", "qlora"):
        c = get_config()
        # LoRA adapts the embedding table too, so the vocab-sharded embedding adapter is covered
        targets = "attn,mlp,embed" if method == "lora" else "attn,mlp"
        for key, value in {**overrides, "peft.method": method, "peft.targets": targets}.items():
            section, _, leaf = key.rpartition(".")
            (c[section] if section else c)[leaf] = value
        for name, shape in MESHES.items():
            mesh = make_mesh(*shape, devices=jax.devices()[: int(np.prod(shape))])
            workdir = os.path.join(out, f"{method}_{name}")
            run_stage(c, "ift", workdir, mesh)
            with open(os.path.join(workdir, "ift", "metrics.jsonl")) as f:
                report[f"{method}_{name}"] = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    return report


def check_lora_and_qlora_match(out, variant: str, steps: int) -> None:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, __file__, str(out), variant], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["device_count"] == 8
    for method, tol in (("lora", 1e-4), ("qlora", 1e-3)):
        one, eight = report[f"{method}_1dev"], report[f"{method}_1x8x1"]
        assert len(one) == len(eight) == steps
        assert max(abs(a - b) for a, b in zip(one, eight)) <= tol, (method, one, eight)


def test_lora_and_qlora_on_an_8_device_mesh_match_one_device_in_two_short_steps(tmp_path):
    check_lora_and_qlora_match(tmp_path, "fast", 2)


@pytest.mark.slow  # four trainer runs (~3 minutes on 2 shared cores)
def test_lora_and_qlora_on_an_8_device_mesh_match_one_device(tmp_path):
    check_lora_and_qlora_match(tmp_path, "full", 3)


if __name__ == "__main__":
    print(json.dumps(run_everywhere(sys.argv[1], FAST if sys.argv[2:] == ["fast"] else OVERRIDES)))
