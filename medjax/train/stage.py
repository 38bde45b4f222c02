"""One stage (CP, IFT, HA, task adaptation) through the one training loop.

A stage differs from another only by its data kind and its objective; all of them write the same
directory layout: checkpoints/, metrics.jsonl, tensorboard/, hf/, model_config.json, tokenizer/.
`run_stage` only puts the pieces together: the model and its data, the compiled program
(train/program.py), the restore (train/checkpointing.py), the step loop (train/loop.py) and the
export (train/export.py).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time


from medjax.data.glm_blank_infilling import blank_tokens_of
from medjax.data.eval_sources import build_eval_sets, flatten, regroup
from medjax.data.pipeline import build_train_iterator
from medjax.parallel.mesh import place, process_rows
from medjax.parallel.rules import with_activation_sharding
from medjax.train.checkpointing import Progress, StageCheckpoints
from medjax.train.config import stage_data
from medjax.train.export import export_stage
from medjax.train.feed import batch_feed, prefetch_depth, view_of
from medjax.train.loop import StepRun, train_steps
from medjax.train.metrics_log import MetricsLog
from medjax.train.model_init import initial_model
from medjax.train.nan_guard import NonFiniteLoss  # noqa: F401 -- main.py catches it from here
from medjax.train.program import stage_program
from medjax.train.reference import precompute_reference, reference_extras
from medjax.train.stage_files import check_tokenizer, mismatch_hint, stage_lineage, write_stage_files
from medjax.train.trainables import prepare_trainable


@dataclasses.dataclass
class StageResult:
    name: str
    stage_dir: str
    steps: int
    first_loss: float | None
    last_loss: float | None
    first_eval_loss: float | None
    last_eval_loss: float | None
    wall_time_s: float
    checkpoint: str
    hf_dir: str | None
    data_stats: dict
    token_counts: dict
    eval_metrics: dict
    benchmark: dict | None = None

    def summary(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name",)}


def stage_train_config(c, name: str):
    t = copy.deepcopy(c.train)
    with t.unlocked():
        if c[name].steps is not None:
            t.steps = c[name].steps
        if c[name].lr is not None:
            t.lr = c[name].lr
    return t


def run_stage(c, name: str, workdir: str, mesh, parent_spec: str | None = None,
              parent_lineage: dict | None = None, is_main: bool = True) -> StageResult:
    start_time = time.time()
    stage_dir = os.path.join(workdir, name)
    os.makedirs(stage_dir, exist_ok=True)
    t = stage_train_config(c, name)
    model, tokenizer, origin = initial_model(c, t.seed, mesh, parent_spec)
    model_cfg = model.config
    check_tokenizer(name, tokenizer, model_cfg, parent_lineage)
    lineage = stage_lineage(c, name, origin, tokenizer, model_cfg)
    data_cfg = stage_data(c, name)
    common = dict(kind=c[name].kind, seq_len=t.seq_len, batch_size=t.batch_size, model_family=model_cfg.family,
                  blank_tokens=blank_tokens_of(model_cfg))
    new_iterator = lambda: build_train_iterator(data_cfg, tokenizer, seed=t.seed,  # noqa: E731
                                                rows=process_rows(mesh, t.batch_size), **common)  # its rows only
    train_it, depth = new_iterator(), prefetch_depth(data_cfg)
    # {name: batches}, t.eval_batches at most per named held-out source (data/eval_sources.py)
    eval_key = f"config.{name}.data.eval" if "data" in c[name] else "config.data.eval"  # named in errors
    eval_batches = build_eval_sets(data_cfg, tokenizer, t.eval_batches, eval_key, **common)

    model, trainable_filter = prepare_trainable(c, model)  # peft_config.json: write_stage_files, after the restore
    extras = reference_extras(c[name], model)  # preference settings and reference model
    precomputed = precompute_reference(c[name], stage_dir, model, new_iterator, flatten(eval_batches), t.steps,
                                       t.batch_size, mesh, name)
    eval_batches = regroup(eval_batches, precomputed.eval_batches) if precomputed else eval_batches
    graphdef, params, frozen, program = stage_program(c, name, t, model, trainable_filter, mesh)
    del model
    frozen = place(frozen, program.frozen_shardings)
    state = program.init(place(params, program.state_shardings["params"]))
    del params

    ckpts = StageCheckpoints(stage_dir, name, c, mesh, lineage)
    log = MetricsLog(stage_dir, name, t.steps, enabled=is_main)
    restored = ckpts.restore(graphdef, trainable_filter, state, frozen, mismatch_hint(stage_dir, model_cfg))
    if is_main:
        write_stage_files(c, stage_dir, model_cfg, tokenizer, lineage)
    start_step, progress = 0, Progress()
    if restored is None:
        log.start_fresh()  # lines from a run that died before its first checkpoint describe lost work
    else:
        start_step, state, frozen, progress = restored.step, restored.state, restored.frozen, restored.progress
        train_it.set_state(restored.data_state)
        log.resume_at(start_step)
        if is_main:
            print(f"[{name}] resumed from {ckpts.step_dir(start_step)} (step {start_step})", flush=True)

    run = StepRun(name=name, t=t, checkpoint_every=c.checkpoint.every,
                  train_step=with_activation_sharding(program.train_step, mesh),
                  eval_step=with_activation_sharding(program.eval_step, mesh), extras=extras,
                  eval_batches=eval_batches, mesh=mesh, ckpts=ckpts, log=log)
    data = view_of(train_it)
    with batch_feed(train_it, mesh, start_step + 1, t.steps, depth, precomputed) as feed:  # reads from here on
        if start_step == 0 and eval_batches:
            run.evaluate_into(0, state, frozen, progress)
        if is_main and start_step < t.steps:
            print(f"[{name}] training steps {start_step + 1}..{t.steps}: kind={c[name].kind} "
                  f"objective={c[name].objective} batch={t.batch_size}x{t.seq_len} from {origin}", flush=True)
        state, data = train_steps(run, state, frozen, feed, progress, data)
    ckpts.close()
    log.close()

    hf_dir, benchmark = export_stage(c, graphdef, state["params"], frozen, tokenizer, stage_dir, is_main)
    return StageResult(
        name=name, stage_dir=stage_dir, steps=t.steps, first_loss=progress.first_loss, last_loss=progress.last_loss,
        first_eval_loss=progress.first_eval_loss, last_eval_loss=progress.last_eval_loss,
        wall_time_s=round(time.time() - start_time, 1), checkpoint=ckpts.step_dir(t.steps), hf_dir=hf_dir,
        data_stats=data.stats, token_counts=data.token_counts, eval_metrics=progress.eval_metrics,
        benchmark=benchmark)
