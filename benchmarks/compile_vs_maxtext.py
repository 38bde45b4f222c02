"""Compile time and per-chip memory of llama2-7b full-parameter training for a TPU v5e-16 slice:
`python -m medjax.plan` against MaxText's own `train_compile.py`, alternated on this machine.

The configuration is issue 13's: fsdp 16, 2 sequences of 2048 per chip (global batch 32), remat full,
bf16 compute, fp32 weights, AdamW, each project's TPU flash/splash attention. Both compile cold (MaxText
gets a fresh jax_cache_dir per run; medjax.plan keeps no cache). Wall time is the whole process (imports,
tracing, compile); medjax's compile_s is read from its --json, MaxText's memory from the
CompiledMemoryStats line it prints. Rounds alternate the two so they share the machine's noise.

Needs libtpu beside jax (`pip install -e '.[tpu]'`) and a MaxText checkout with its own environment:
  PYTHONPATH=. python benchmarks/compile_vs_maxtext.py --maxtext_src=/tmp/maxtext/src \
      --maxtext_python=/tmp/maxtext-venv/bin/python [--rounds=3]
MaxText commit e591f30 (Python 3.12; jax 0.10.2, libtpu 0.0.42.1, flax 0.12.8; `DECOUPLE_GCLOUD=TRUE`
spares the Google Cloud packages).

Last measured (2026-12-02 03:27 UTC, 2-core AMD EPYC, nothing else running, --rounds=3):

| program | wall s (median; rounds) | compile s | arguments GiB/chip | temporaries GiB/chip |
|---|---|---|---|---|
| medjax.plan | 48.1 (60.1, 48.1, 45.8) | 44.9 (55.1, 44.9, 42.9) | 4.71 | 6.72 |
| MaxText train_compile.py | 55.9 (54.4, 56.7, 55.9) | - | 4.71 | 6.76 |

Wall-time ratio medjax / MaxText 0.86 (per round 1.10, 0.85, 0.82). MaxText prints no compile time; timed
separately around its lower() and compile() calls, in quiet runs an hour apart, its compile took 56-66 s
and its imports 6.5-8.3 s of the wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2**30
MEDJAX = ["-m", "medjax.plan", "--config=configs/ift.py", "--config.model.init=scratch",
          "--config.model.preset=llama2-7b", "--config.model.dtype=bfloat16", "--config.model.param_dtype=float32",
          "--config.model.remat=full", "--config.train.seq_len=2048", "--config.train.batch_size=32",
          "--config.mesh.data=1", "--config.mesh.fsdp=-1", "--topology=v5e:4x4", "--json"]
MAXTEXT = ["maxtext/trainers/pre_train/train_compile.py", "maxtext/configs/base.yml", "model_name=llama2-7b",
           "compile_topology=v5e-16", "compile_topology_num_slices=1", "ici_fsdp_parallelism=16",
           "per_device_batch_size=2", "max_target_length=2048", "remat_policy=full", "dtype=bfloat16",
           "weight_dtype=float32", "opt_type=adamw", "attention=flash"]


def run_medjax(python: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([python, *MEDJAX], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"medjax.plan failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    d = report["per_device"]
    return {"wall_s": wall, "compile_s": report["compile_s"], "arguments_gib": d["compiler"]["arguments"] / GIB,
            "temp_gib": d["temp"] / GIB}


def run_maxtext(python: str, src: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": src, "DECOUPLE_GCLOUD": "TRUE", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
               "JAX_PLATFORMS": "cpu"}
        start = time.perf_counter()
        proc = subprocess.run([python, *MAXTEXT, f"jax_cache_dir={cache}"], cwd=src, capture_output=True,
                              text=True, env=env)
        wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    stats = re.search(r"argument_size_in_bytes=(\d+).*?temp_size_in_bytes=(\d+)", out)
    if proc.returncode or not stats:
        sys.exit(f"MaxText's train_compile.py failed ({proc.returncode}):\n{out[-3000:]}")
    return {"wall_s": wall, "arguments_gib": int(stats.group(1)) / GIB, "temp_gib": int(stats.group(2)) / GIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maxtext_src", required=True, help="MaxText's src/ folder (holds maxtext/)")
    parser.add_argument("--maxtext_python", required=True, help="the Python of MaxText's environment")
    parser.add_argument("--python", default=sys.executable, help="the Python with medjax and libtpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        ours, theirs = run_medjax(args.python), run_maxtext(args.maxtext_python, args.maxtext_src)
        rounds.append((ours, theirs))
        print(f"round {i + 1}: medjax wall {ours['wall_s']:.1f} s (compile {ours['compile_s']:.1f} s), "
              f"MaxText wall {theirs['wall_s']:.1f} s, ratio {ours['wall_s'] / theirs['wall_s']:.2f}", flush=True)
    ours_wall = statistics.median(o["wall_s"] for o, _ in rounds)
    theirs_wall = statistics.median(t["wall_s"] for _, t in rounds)
    ours, theirs = rounds[-1]
    print(f"\n{args.rounds} rounds, llama2-7b full, v5e:4x4 (v5e-16), 32 x 2048, fsdp 16, remat full")
    print("| program | wall s (median) | compile s (median) | arguments GiB/chip | temporaries GiB/chip |")
    print("|---|---|---|---|---|")
    print(f"| medjax.plan | {ours_wall:.1f} | {statistics.median(o['compile_s'] for o, _ in rounds):.1f} | "
          f"{ours['arguments_gib']:.2f} | {ours['temp_gib']:.2f} |")
    print(f"| MaxText train_compile.py | {theirs_wall:.1f} | - | {theirs['arguments_gib']:.2f} | "
          f"{theirs['temp_gib']:.2f} |")
    per_round = ", ".join(f"{o['wall_s'] / t['wall_s']:.2f}" for o, t in rounds)
    print(f"wall-time ratio medjax / MaxText: {ours_wall / theirs_wall:.2f} (per round: {per_round})")


if __name__ == "__main__":
    main()
