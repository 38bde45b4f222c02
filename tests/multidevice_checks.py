"""Sharding checks that need several devices, run in a subprocess with simulated CPU devices:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/multidevice_checks.py OUT_DIR 1dev,1x8x1,...

One process (one set of compiles) answers every check and prints a JSON object on its last line;
tests/test_sharding.py asserts on it. OUT_DIR receives the run directories and the restored params.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import jax
import numpy as np
from flax import nnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from medjax.checkpoint.manager import TrainCheckpoints, abstract_of  # noqa: E402
from medjax.checkpoint.params_io import save_params  # noqa: E402
from medjax.parallel.mesh import (make_mesh, optimizer_shardings, per_device_bytes, replicated,  # noqa: E402
                                  shardings_of)
from medjax.train.model_init import initial_model  # noqa: E402
from medjax.train.optimizer import make_optimizer  # noqa: E402
from medjax.train.stage import run_stage  # noqa: E402
from medjax.train.step import init_state  # noqa: E402

# the same flags as test_multihost's command line (configs/cp.py, preset "test")
OVERRIDES = {"model.preset": "test", "train.seq_len": 64, "train.batch_size": 8, "train.steps": 3,
             "train.log_every": 1, "train.eval_every": 0, "train.eval_batches": 0, "train.warmup_steps": 2,
             "export_hf": False, "checkpoint.async_save": False}
MESHES = {"1dev": (1, 1, 1), "8x1x1": (8, 1, 1), "1x8x1": (1, 8, 1), "1x1x8": (1, 1, 8), "2x2x2": (2, 2, 2),
          "1x2x4": (1, 2, 4)}


def tiny_config():
    sys.path.insert(0, os.path.join(ROOT, "configs"))
    import cp

    c = cp.get_config()
    for key, value in OVERRIDES.items():
        section, _, leaf = key.rpartition(".")
        (c[section] if section else c)[leaf] = value
    return c


def mesh_of(name):
    shape = MESHES[name]
    return make_mesh(*shape, devices=jax.devices()[: int(np.prod(shape))])


def losses(workdir):
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if "loss" in r]


def train_on_meshes(c, out, names):
    result = {}
    for name in names:
        workdir = os.path.join(out, f"run_{name}")
        run_stage(c, "cp", workdir, mesh_of(name))
        result[name] = losses(workdir)
    return result


def fsdp_memory(c):
    """Per-device bytes of params + optimizer state, built the way run_stage builds them."""
    mesh = mesh_of("1x8x1")
    model, _, _ = initial_model(c, 0, mesh)
    _, params, _ = nnx.split(model, nnx.Param, ...)
    optimizer, _ = make_optimizer(c.train, c.train.steps)
    init_sh = {"step": replicated(mesh), "params": shardings_of(params),
               "opt_state": optimizer_shardings(optimizer, params, mesh), "rng": replicated(mesh)}
    state = jax.jit(lambda p: init_state(p, optimizer, 0), out_shardings=init_sh)(params)
    per_device = per_device_bytes(state)
    total = sum(x.nbytes for x in jax.tree.leaves(state))
    return {"total_bytes": total, "per_device_bytes": sorted(per_device.values()), "devices": len(per_device)}


def params_on(mesh, c):
    """Abstract full-params target (every variable, as a pure dict) sharded for `mesh`."""
    model, _, _ = initial_model(c, 1, mesh)  # another seed: the restore must overwrite every value
    graphdef, state = nnx.split(model)
    return graphdef, state


def restore_across_meshes(c, out):
    """The fsdp=8 run's last checkpoint restored on (2,2,2), then saved for a 1-device process."""
    ckpts = TrainCheckpoints(os.path.join(out, "run_1x8x1", "cp", "checkpoints"))
    step = ckpts.latest_step()
    _, state8 = params_on(mesh_of("1x8x1"), c)
    graphdef, state222 = params_on(mesh_of("2x2x2"), c)
    on8 = ckpts.restore_params(step, abstract_of(nnx.to_pure_dict(state8)))
    on222 = ckpts.restore_params(step, abstract_of(nnx.to_pure_dict(state222)))
    ckpts.close()
    flat8, flat222 = jax.tree_util.tree_leaves_with_path(on8), jax.tree_util.tree_leaves_with_path(on222)
    same = all(np.array_equal(np.asarray(a), np.asarray(b)) for (_, a), (_, b) in zip(flat8, flat222))
    specs = {jax.tree_util.keystr(p): str(x.sharding.spec) for p, x in flat222}
    devices = {len(x.sharding.device_set) for _, x in flat222}
    nnx.replace_by_pure_dict(state222, on222)
    model = nnx.merge(graphdef, state222)
    save_params(os.path.join(out, "params_from_2x2x2"), model)
    np.savez(os.path.join(out, "params_expected.npz"),
             **{jax.tree_util.keystr(p): np.asarray(x) for p, x in flat8})
    return {"identical_8_vs_222": same, "specs_222": specs, "device_counts_222": sorted(devices)}


def resume_on_another_mesh(c, out):
    """The trainer's own resume path: the fsdp=8 run's step-3 checkpoint (params and optimizer state)
    picked up on (2,2,2)."""
    workdir = os.path.join(out, "resume_2x2x2")
    shutil.copytree(os.path.join(out, "run_1x8x1"), workdir)
    result = run_stage(c, "cp", workdir, mesh_of("2x2x2"))
    return {"first_loss": result.first_loss, "last_loss": result.last_loss, "losses": losses(workdir)}


def generate_on_meshes(c, out):
    """Greedy decoding of the fsdp=8 run's weights on one device and on (2,2,2): the same tokens."""
    from medjax.infer.generate import generate

    ckpts = TrainCheckpoints(os.path.join(out, "run_1x8x1", "cp", "checkpoints"))
    tokens = {}
    for name in ("1dev", "2x2x2"):
        graphdef, state = params_on(mesh_of(name), c)
        nnx.replace_by_pure_dict(state, ckpts.restore_params(ckpts.latest_step(), abstract_of(nnx.to_pure_dict(state))))
        tokens[name] = generate(nnx.merge(graphdef, state), [[1, 5, 9, 13], [1, 7]], max_new_tokens=4)
    ckpts.close()
    return tokens


def glm4_lora_on_meshes(out, base_dir, tokenizer):
    """A GLM-4 LoRA IFT stage (hf:base_dir, adapters on attn and mlp) for 3 steps on one device and
    on fsdp=8: {mesh name: losses}, which must agree."""
    sys.path.insert(0, os.path.join(ROOT, "configs"))
    import ift

    c = ift.get_config()
    for key, value in OVERRIDES.items():
        section, _, leaf = key.rpartition(".")
        (c[section] if section else c)[leaf] = value
    c.model.init, c.model.tokenizer = f"hf:{base_dir}", tokenizer
    c.peft.method, c.peft.targets, c.peft.dropout = "lora", "attn,mlp", 0.0
    c.train.lr = 3e-2
    result = {}
    for name in ("1dev", "1x8x1"):
        workdir = os.path.join(out, f"glm4_lora_{name}")
        run_stage(c, "ift", workdir, mesh_of(name))
        with open(os.path.join(workdir, "ift", "metrics.jsonl")) as f:
            result[name] = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    return result


def main(out, names):
    unknown = set(names) - set(MESHES)
    if unknown or "1x8x1" not in names:
        raise SystemExit(f"meshes {names}: expected names from {sorted(MESHES)}, including 1x8x1")
    os.makedirs(out, exist_ok=True)
    c = tiny_config()
    report = {"device_count": jax.device_count()}
    report["losses"] = train_on_meshes(c, out, names)
    report["memory"] = fsdp_memory(c)
    report["restore"] = restore_across_meshes(c, out)
    report["resume"] = resume_on_another_mesh(c, out)
    report["generate"] = generate_on_meshes(c, out)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(","))
