"""What a finished stage leaves besides checkpoints: the HF directory (config.export_hf) and the
end-of-stage benchmark report (config.eval, train/benchmarks.py)."""
from __future__ import annotations

import os

import jax
from flax import nnx

from medjax.checkpoint.hf_model import save_hf_model
from medjax.parallel.distributed import host_copy
from medjax.train.benchmarks import run_benchmarks
from medjax.train.trainables import exportable_model


def export_stage(c, graphdef, params, frozen, tokenizer, stage_dir: str,
                 is_main: bool) -> tuple[str | None, dict | None]:
    """(hf_dir or None, benchmark report or None) for the stage's final weights."""
    if not (c.export_hf or c.eval.tasks):
        return None, None
    if jax.process_count() > 1:  # every process joins the gather; process 0 writes
        params, frozen = host_copy(params), host_copy(frozen)
    if not is_main:
        return None, None
    final_model = nnx.merge(graphdef, params, frozen)
    hf_dir = None
    if c.export_hf:
        hf_dir = os.path.join(stage_dir, "hf")
        save_hf_model(exportable_model(final_model), hf_dir, tokenizer)
    benchmark = run_benchmarks(c, final_model, tokenizer, stage_dir) if c.eval.tasks else None
    return hf_dir, benchmark
