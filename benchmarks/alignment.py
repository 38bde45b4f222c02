"""DPO step time and peak bytes of live device arrays with each reference model, on a ~50M LLaMA.

    python benchmarks/alignment.py [--preset=bench50m] [--steps=6] [--batch_size=8] [--seq_len=256]
        [--tokenizer=../shared/data/tokenizers/llama2/tokenizer.model] [--dtype=float32] [--json=OUT.json]

Variants: full-parameter DPO with reference=copy (a second copy of the weights), and with
reference=precomputed (a pass before training, then no reference forward); LoRA DPO with
reference=base (adapters switched off; one copy of the base) and, for comparison, LoRA with copy.
Each variant is a real run of the trainer on the embedded preference pairs. Step time is the median
over the logged steps after the first (which compiles); memory is the peak, sampled at every batch
the trainer places, of the live arrays the run created (weights, reference, optimizer state,
batches); `weights` is one copy of the model's parameters for scale.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import tempfile
import time

import jax
from flax import nnx

import medjax.train.stage as stage
from medjax.data.tokenizer import load_tokenizer
from medjax.parallel.mesh import make_mesh
from medjax.train.model_init import scratch_model
from medjax.train.pipeline import run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")
VARIANTS = {"copy": ("copy", False), "precomputed": ("precomputed", False), "base (LoRA)": ("base", True),
            "copy (LoRA)": ("copy", True)}


def ha_config(args, reference: str, lora: bool):
    spec = importlib.util.spec_from_file_location("ha", os.path.join(REPO, "configs", "ha.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.model.update(preset=args.preset, tokenizer=args.tokenizer, dtype=args.dtype)
    c.train.update(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, log_every=1, eval_every=0,
                   eval_batches=1, warmup_steps=1)
    c.checkpoint.update(every=args.steps, async_save=False)
    c.export_hf = False
    c.ha.reference = reference
    if lora:
        c.peft.update(method="lora", rank=16, alpha=32.0, targets="all")
    return c


def measure(c, workdir: str) -> dict:
    """Runs the stage; (median step seconds, peak bytes of the live arrays it created, wall seconds)."""
    gc.collect()
    before = {id(x) for x in jax.live_arrays()}
    peak = [0]
    place = stage.put_batch

    def sampling_put_batch(batch, mesh):  # the trainer calls this once per batch it trains or evaluates on
        peak[0] = max(peak[0], sum(x.nbytes for x in jax.live_arrays() if id(x) not in before))
        return place(batch, mesh)

    stage.put_batch = sampling_put_batch
    start = time.perf_counter()
    try:
        run(c, workdir)
    finally:
        stage.put_batch = place
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "ha", "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if '"tokens_per_s"' in line]
    step_s = [r["tokens"] / r["tokens_per_s"] for r in rows if r["step"] > 1]
    return {"step_s": round(statistics.median(step_s), 4), "peak_bytes": peak[0], "wall_s": round(wall, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="bench50m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--tokenizer", default=os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    c = ha_config(args, "copy", False)
    model = scratch_model(c.model, load_tokenizer(args.tokenizer), 0, make_mesh())
    weights = sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))
    params = sum(x.size for x in jax.tree.leaves(nnx.state(model)))
    del model
    print(f"preset={args.preset} ({params / 1e6:.1f}M parameters, {weights / 2**20:.0f} MiB)  "
          f"batch={args.batch_size}x{args.seq_len}  device={jax.devices()[0].platform}")
    print(f"{'reference':14} {'step s':>8} {'peak MiB':>9} {'x weights':>10} {'wall s':>8}")
    results = {"preset": args.preset, "parameters": params, "weights_bytes": weights, "variants": {}}
    for name in args.variants.split(","):
        reference, lora = VARIANTS[name]
        with tempfile.TemporaryDirectory() as workdir:
            r = measure(ha_config(args, reference, lora), workdir)
        results["variants"][name] = r
        print(f"{name:14} {r['step_s']:>8.3f} {r['peak_bytes'] / 2**20:>9.0f} {r['peak_bytes'] / weights:>10.2f} "
              f"{r['wall_s']:>8.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
