"""FSDP on 1, 2, 4, 8 simulated CPU devices: per-device bytes of parameters + optimizer state (read
from the arrays' shards) and the time of one training step, as a table.

    python benchmarks/sharding.py [--preset=tiny] [--batch_size=8] [--seq_len=128] [--steps=5] [--json=OUT]

The devices are simulated (XLA_FLAGS=--xla_force_host_platform_device_count=8, set here when
absent), so they share the host's cores: the byte column is what a real mesh holds, the time
column shows partitioning overhead, not speed-up.
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from medjax.parallel.mesh import (batch_sharding, make_mesh, optimizer_shardings, per_device_bytes,  # noqa: E402
                                  put_batch, replicated, shardings_of)
from medjax.parallel.rules import with_activation_sharding  # noqa: E402
from medjax.train.config import training_config  # noqa: E402
from medjax.train.model_init import initial_model  # noqa: E402
from medjax.train.objectives import get_objective  # noqa: E402
from medjax.train.optimizer import make_optimizer  # noqa: E402
from medjax.train.step import init_state, make_train_step  # noqa: E402


def random_batch(batch_size: int, seq_len: int, vocab: int) -> dict:
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, vocab, (batch_size, seq_len + 1), dtype=np.int32)
    ones = np.ones((batch_size, seq_len), np.int32)
    return {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": ones.astype(np.float32),
            "segment_ids": ones, "positions": np.broadcast_to(np.arange(seq_len, dtype=np.int32), ones.shape).copy()}


def measure(c, devices: int, steps: int) -> dict:
    mesh = make_mesh(1, devices, 1, devices=jax.devices()[:devices])
    model, _, _ = initial_model(c, 0, mesh)
    graphdef, params, frozen = nnx.split(model, nnx.Param, ...)
    optimizer, schedule = make_optimizer(c.train, 1000)
    init_sh = {"step": replicated(mesh), "params": shardings_of(params),
               "opt_state": optimizer_shardings(optimizer, params, mesh), "rng": replicated(mesh)}
    state = jax.jit(lambda p: init_state(p, optimizer, 0), out_shardings=init_sh)(params)
    held = per_device_bytes(state)
    state_sh, frozen_sh = shardings_of(state), shardings_of(frozen)
    step = with_activation_sharding(jax.jit(
        make_train_step(graphdef, get_objective("lm"), optimizer, schedule),
        in_shardings=(state_sh, frozen_sh, batch_sharding(mesh), None), out_shardings=(state_sh, replicated(mesh)),
        donate_argnums=(0,)), mesh)
    batch = put_batch(random_batch(c.train.batch_size, c.train.seq_len, model.config.vocab_size), mesh)
    state, metrics = step(state, frozen, batch, {})  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, frozen, batch, {})
    jax.block_until_ready(metrics)
    return {"devices": devices, "total_bytes": sum(x.nbytes for x in jax.tree.leaves(state)),
            "max_device_bytes": max(held.values()), "step_s": (time.perf_counter() - start) / steps,
            "loss": float(metrics["loss"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if jax.device_count() < 8:
        raise SystemExit(f"need 8 devices, found {jax.device_count()} (XLA_FLAGS={os.environ.get('XLA_FLAGS')})")
    c = training_config("cp")
    c.model.preset, c.train.batch_size, c.train.seq_len = args.preset, args.batch_size, args.seq_len
    rows = [measure(c, n, args.steps) for n in (1, 2, 4, 8)]
    print(f"FSDP, preset {args.preset}, batch {args.batch_size}x{args.seq_len}, params + AdamW state")
    print(f"{'devices':>7}  {'bytes/device':>12}  {'of total':>8}  {'step ms':>8}  {'loss':>7}")
    for r in rows:
        print(f"{r['devices']:>7}  {r['max_device_bytes']:>12,}  {r['max_device_bytes'] / r['total_bytes']:>8.3f}  "
              f"{r['step_s'] * 1000:>8.1f}  {r['loss']:>7.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
