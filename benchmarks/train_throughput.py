"""Training throughput: medjax vs transformers+PyTorch on the PERFORMANCE.md workload, plus MFU.

Workload: LLaMA, vocab 32000, hidden 512, intermediate 1344, 8 layers, 8 heads, untied, fp32,
batch 8 x 512, AdamW, full-parameter. Runs alternate (medjax, torch, medjax, torch, ...) so both
see the same machine noise; the matmul peak (2048^3 fp32 through XLA) is measured in the same run.

  PYTHONPATH=. python benchmarks/train_throughput.py [--rounds=2] [--steps=3] [--batch=8] [--seq=512] [--preset=bench50m]

Last measured (2026-11-22, busy 2-core machine, --rounds=3 --steps=2, medians): torch 436 tok/s,
medjax 248 tok/s (ratio 0.57), MFU 65% of a 137 GFLOP/s XLA peak; the same run on the code before the
throughput pass: torch 416, medjax 222 (0.53), MFU 57%. Alternating the two medjax versions step by
step in one run (less noise than separate runs): best 16.7 -> 13.4 s per step (1.25x; 1.22-1.34x per
round), identical losses.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def model_config(preset: str):
    from medjax.models.config import ModelConfig
    from medjax.models.presets import preset as get_preset

    return ModelConfig(vocab_size=32000, **{**get_preset(preset), "tie_embeddings": False})


def flops_per_step(cfg, batch: int, seq: int) -> float:
    """6 x params x tokens for the matmuls, plus causal attention scores and values (fwd + bwd)."""
    tokens = batch * seq
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq * tokens / 2
    return 6 * cfg.num_params() * tokens + attention


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


class MedjaxRunner:
    def __init__(self, cfg, batch: int, seq: int):
        import jax
        from flax import nnx

        from medjax.models.decoder import DecoderLM
        from medjax.train.config import train_section
        from medjax.train.objectives import lm_objective
        from medjax.train.optimizer import make_optimizer
        from medjax.train.step import init_state, make_train_step

        model = DecoderLM(cfg, rngs=nnx.Rngs(0))
        graphdef, params, self.frozen = nnx.split(model, nnx.Param, ...)
        t = train_section()
        optimizer, schedule = make_optimizer(t, 1000)
        self.state = init_state(params, optimizer, 0)
        self.step = jax.jit(make_train_step(graphdef, lm_objective, optimizer, schedule), donate_argnums=(0,))
        rng = np.random.RandomState(0)
        tokens = rng.randint(0, cfg.vocab_size, (batch, seq + 1)).astype(np.int32)
        self.batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": np.ones((batch, seq), np.float32),
                      "segment_ids": np.ones((batch, seq), np.int32),
                      "positions": np.broadcast_to(np.arange(seq, dtype=np.int32), (batch, seq)).copy()}
        t0 = time.perf_counter()
        self.run(1)
        self.compile_s = time.perf_counter() - t0

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.step(self.state, self.frozen, self.batch, {})
        float(metrics["loss"])
        return time.perf_counter() - t0


class TorchRunner:
    def __init__(self, cfg, batch: int, seq: int, threads: int):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.set_num_threads(threads)
        hf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                         num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                         num_key_value_heads=cfg.num_kv_heads, tie_word_embeddings=False)
        hf._attn_implementation = "sdpa"
        self.model = LlamaForCausalLM(hf).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.01)
        rng = np.random.RandomState(0)
        self.ids = torch.tensor(rng.randint(0, cfg.vocab_size, (batch, seq)))
        self.run(1)

    def run(self, steps: int) -> float:
        import torch

        t0 = time.perf_counter()
        for _ in range(steps):
            loss = self.model(input_ids=self.ids, labels=self.ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--preset", default="bench50m")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--no_torch", action="store_true")
    args = p.parse_args()

    cfg = model_config(args.preset)
    tokens = args.batch * args.seq
    flops = flops_per_step(cfg, args.batch, args.seq)
    print(f"workload: {cfg.num_params() / 1e6:.1f}M params, batch {args.batch} x seq {args.seq}, "
          f"{flops:.3g} FLOPs/step", flush=True)
    ours = MedjaxRunner(cfg, args.batch, args.seq)
    print(f"medjax compile + first step: {ours.compile_s:.1f} s", flush=True)
    theirs = None if args.no_torch else TorchRunner(cfg, args.batch, args.seq, args.threads)
    ours_tps, theirs_tps, peaks = [], [], []
    for r in range(args.rounds):
        peaks.append(matmul_peak())
        ours_tps.append(args.steps * tokens / ours.run(args.steps))
        if theirs is not None:
            theirs_tps.append(args.steps * tokens / theirs.run(args.steps))
        print(f"round {r + 1}: medjax {ours_tps[-1]:.0f} tok/s"
              + (f", torch {theirs_tps[-1]:.0f} tok/s" if theirs_tps else "")
              + f", matmul peak {peaks[-1] / 1e9:.0f} GFLOP/s", flush=True)
    m_tps, peak = statistics.median(ours_tps), statistics.median(peaks)
    mfu = m_tps / tokens * flops / peak
    print("\n| program | tokens/s | vs transformers+torch |\n|---|---|---|")
    if theirs_tps:
        t_tps = statistics.median(theirs_tps)
        print(f"| transformers + torch (sdpa, {args.threads} threads) | {t_tps:.0f} | 1.00 |")
        print(f"| medjax | {m_tps:.0f} | {m_tps / t_tps:.2f} |")
    else:
        print(f"| medjax | {m_tps:.0f} | - |")
    print(f"\nmedjax MFU: {100 * mfu:.1f}% of the measured XLA fp32 matmul peak ({peak / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
