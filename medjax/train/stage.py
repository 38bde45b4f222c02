"""One stage (CP, IFT, HA, task adaptation) through the one training loop.

A stage differs from another only by its data kind and its objective; all of them write the same
directory layout: checkpoints/, metrics.jsonl, tensorboard/, hf/, model_config.json, tokenizer/.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.hf_model import save_hf_model
from medjax.checkpoint.manager import TrainCheckpoints, abstract_of
from medjax.checkpoint.params_io import MODEL_CONFIG, TOKENIZER
from medjax.data.glm_blank_infilling import blank_tokens_of
from medjax.data.pipeline import build_eval_batches, build_train_iterator
from medjax.parallel.mesh import (batch_sharding, optimizer_shardings, place, put_batch, replicated,
                                  shardings_of, state_shardings)
from medjax.parallel.distributed import host_copy
from medjax.parallel.rules import with_activation_sharding
from medjax.peft.config import PEFT_CONFIG, PeftSettings
from medjax.train import preemption
from medjax.train.config import stage_data
from medjax.train.metrics_log import MetricsLog
from medjax.train.model_init import initial_model
from medjax.train.nan_guard import NonFiniteLoss  # noqa: F401 -- main.py catches it from here
from medjax.train.nan_guard import all_finite, loss_not_finite, weights_not_finite
from medjax.train.objectives import get_objective
from medjax.train.optimizer import make_optimizer
from medjax.train.reference import precompute_reference, reference_extras
from medjax.train.step import init_state, make_eval_step, make_train_step
from medjax.train.trainables import exportable_model, prepare_trainable


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


def _lineage(c, name: str, origin: str, tokenizer, model_cfg) -> dict:
    return {"stage": name, "parent": origin, "tokenizer_fingerprint": tokenizer.fingerprint(),
            "model_config": model_cfg.to_dict(), "config": json.loads(c.to_json_best_effort())}


def _check_tokenizer(name: str, tokenizer, model_cfg, parent_lineage: dict | None) -> None:
    if tokenizer.vocab_size > model_cfg.vocab_size:
        raise ValueError(f"stage {name}: tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has "
                         f"{model_cfg.vocab_size} rows; set config.model.tokenizer to the model's own tokenizer")
    if parent_lineage and parent_lineage.get("tokenizer_fingerprint") not in (None, tokenizer.fingerprint()):
        raise ValueError(f"stage {name}: tokenizer fingerprint {tokenizer.fingerprint()} differs from the parent "
                         f"stage's {parent_lineage['tokenizer_fingerprint']} (config.model.tokenizer changed?)")


def _write_stage_files(c, stage_dir: str, model_cfg, tokenizer, lineage: dict) -> None:
    """After the restore: until then these files describe the model the checkpoints hold."""
    with open(os.path.join(stage_dir, MODEL_CONFIG), "w") as f:
        f.write(model_cfg.to_json())
    tokenizer.save(os.path.join(stage_dir, TOKENIZER))
    with open(os.path.join(stage_dir, "lineage.json"), "w") as f:
        json.dump(lineage, f, indent=2, sort_keys=True, default=str)
    peft = PeftSettings.from_config(c)
    if peft.method != "none":
        peft.save(stage_dir)  # lets ckpt: loading rebuild the adapter graph
    elif os.path.exists(os.path.join(stage_dir, PEFT_CONFIG)):
        os.remove(os.path.join(stage_dir, PEFT_CONFIG))  # left by an earlier PEFT run of this stage


def _mismatch_hint(stage_dir: str, model_cfg) -> str:
    """What to tell a run whose checkpoints were written for another model or optimizer."""
    path = os.path.join(stage_dir, MODEL_CONFIG)
    changed = ""
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        now = json.loads(model_cfg.to_json())  # as the file holds it (lists, not tuples)
        diffs = [f"{k}: saved {saved.get(k)!r}, configured {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                 if saved.get(k) != now.get(k)]
        changed = f" ({'; '.join(diffs)})" if diffs else " (the same model; the PEFT or optimizer settings differ)"
    return (f"The checkpoints were written for the model in {path}{changed}, the adapters in "
            f"{os.path.join(stage_dir, PEFT_CONFIG)} if any, and the optimizer settings in lineage.json. "
            "Resume with the settings they were written with, or train the new configuration in a new --workdir")


def run_stage(c, name: str, workdir: str, mesh, parent_spec: str | None = None,
              parent_lineage: dict | None = None, is_main: bool = True) -> StageResult:
    start_time = time.time()
    stage_dir = os.path.join(workdir, name)
    os.makedirs(stage_dir, exist_ok=True)
    t = stage_train_config(c, name)
    kind, objective_name = c[name].kind, c[name].objective

    model, tokenizer, origin = initial_model(c, t.seed, mesh, parent_spec)
    model_cfg = model.config
    _check_tokenizer(name, tokenizer, model_cfg, parent_lineage)
    lineage = _lineage(c, name, origin, tokenizer, model_cfg)

    data_cfg = stage_data(c, name)
    common = dict(kind=kind, seq_len=t.seq_len, batch_size=t.batch_size, model_family=model_cfg.family,
                  blank_tokens=blank_tokens_of(model_cfg))
    train_it = build_train_iterator(data_cfg, tokenizer, seed=t.seed, **common)
    eval_batches = build_eval_batches(data_cfg, tokenizer, **common)[: t.eval_batches]

    model, trainable_filter = prepare_trainable(c, model)  # peft_config.json: _write_stage_files, after the restore
    extras = reference_extras(c[name], model)  # preference settings and reference model
    precomputed = precompute_reference(c[name], stage_dir, model,
                                       lambda: build_train_iterator(data_cfg, tokenizer, seed=t.seed, **common),
                                       eval_batches, t.steps, t.batch_size, mesh, name)
    if precomputed:
        eval_batches = precomputed.eval_batches
    graphdef, params, frozen = nnx.split(model, trainable_filter, ...)
    params = place(params, state_shardings(params, mesh))
    frozen = place(frozen, state_shardings(frozen, mesh))
    objective = get_objective(objective_name, t.get("loss_chunk"))  # LM head chunking: train/chunked_loss.py
    optimizer, schedule = make_optimizer(t, t.steps)
    init_sh = {"step": replicated(mesh), "params": shardings_of(params),
               "opt_state": optimizer_shardings(optimizer, params, mesh), "rng": replicated(mesh)}
    # the starting weights are donated: the train state owns the only copy from here on
    state = jax.jit(lambda p: init_state(p, optimizer, t.seed), out_shardings=init_sh, donate_argnums=(0,))(params)
    del model, params

    ckpts = TrainCheckpoints(os.path.join(stage_dir, "checkpoints"), keep=c.checkpoint.keep,
                             async_save=c.checkpoint.async_save)
    log = MetricsLog(stage_dir, name, t.steps, enabled=is_main)
    full = lambda p, f: nnx.to_pure_dict(nnx.merge_state(p, f))  # noqa: E731 -- params item: every variable
    train_item = lambda s: {"opt_state": s["opt_state"], "step": s["step"], "rng": s["rng"]}  # noqa: E731
    first_loss = last_loss = first_eval = last_eval = None
    start_step = 0
    restored = ckpts.restore_latest(abstract_of(full(state["params"], frozen)), abstract_of(train_item(state)),
                                    mismatch_hint=_mismatch_hint(stage_dir, model_cfg))
    if is_main:
        _write_stage_files(c, stage_dir, model_cfg, tokenizer, lineage)
    if restored is None:
        log.start_fresh()  # lines from a run that died before its first checkpoint describe lost work
    else:
        start_step, full_params, train, meta = restored
        whole = nnx.merge_state(state["params"], frozen)
        nnx.replace_by_pure_dict(whole, full_params)
        _, params, frozen = nnx.split(nnx.merge(graphdef, whole), trainable_filter, ...)
        state = {"params": params, **train}
        train_it.set_state(meta["data"])
        first_loss, first_eval = meta.get("first_loss"), meta.get("first_eval_loss")
        log.resume_at(start_step)
        if is_main:
            print(f"[{name}] resumed from {ckpts.step_dir(start_step)} (step {start_step})", flush=True)

    state_sh, frozen_sh = shardings_of(state), shardings_of(frozen)
    batch_sh = batch_sharding(mesh)
    train_step = with_activation_sharding(jax.jit(
        make_train_step(graphdef, objective, optimizer, schedule, t.grad_accum),
        in_shardings=(state_sh, frozen_sh, batch_sh, None), out_shardings=(state_sh, replicated(mesh)),
        donate_argnums=(0,)), mesh)
    eval_step = with_activation_sharding(jax.jit(
        make_eval_step(graphdef, objective), in_shardings=(state_sh["params"], frozen_sh, batch_sh, None),
        out_shardings=replicated(mesh)), mesh)

    def evaluate(state) -> dict:
        sums, weight = None, 0.0
        for batch in eval_batches:
            m, w = eval_step(state["params"], frozen, put_batch(batch, mesh), extras)
            m = jax.tree.map(float, m)
            sums = m if sums is None else {k: sums[k] + m[k] for k in sums}
            weight += float(w)
        return {f"eval_{k}": v / max(weight, 1e-9) for k, v in (sums or {}).items()}

    finite = jax.jit(all_finite, out_shardings=replicated(mesh))

    def save(step: int, force: bool = False) -> None:
        if not bool(finite((state["params"], state["opt_state"]))):
            raise weights_not_finite(ckpts, name, step)
        meta = {"step": step, "data": train_it.get_state(), "lineage": lineage, "first_loss": first_loss,
                "first_eval_loss": first_eval}
        ckpts.save(step, full(state["params"], frozen), train_item(state), json.loads(json.dumps(meta, default=str)),
                   force=force)

    eval_metrics: dict = {}
    if start_step == 0 and eval_batches:
        eval_metrics = evaluate(state)
        first_eval = last_eval = eval_metrics.get("eval_loss")
        log.write({"step": 0, **eval_metrics})
        log.console(0, eval_metrics)

    if is_main and start_step < t.steps:
        print(f"[{name}] training steps {start_step + 1}..{t.steps}: kind={kind} objective={objective_name} "
              f"batch={t.batch_size}x{t.seq_len} from {origin}", flush=True)
    interval_start, interval_tokens = time.time(), 0
    for step in range(start_step + 1, t.steps + 1):
        batch = next(train_it)
        if precomputed:
            batch = precomputed.attach(step, batch)
        interval_tokens += int(np.count_nonzero(batch["segment_ids"]))
        state, metrics = train_step(state, frozen, put_batch(batch, mesh), extras)
        loss = float(metrics["loss"])
        if not math.isfinite(loss):
            raise loss_not_finite(ckpts, name, loss, step)
        first_loss = loss if first_loss is None else first_loss
        last_loss = loss
        if step % t.log_every == 0 or step in (1, t.steps):
            elapsed = time.time() - interval_start
            record = {"step": step, **{k: float(v) for k, v in metrics.items() if k != "weight"},
                      "tokens_per_s": interval_tokens / max(elapsed, 1e-9), "tokens": interval_tokens,
                      **{f"tokens/{k}": v for k, v in train_it.token_counts().items()}}
            log.write(record)
            log.console(step, record)
            interval_start, interval_tokens = time.time(), 0
        if (t.eval_every and step % t.eval_every == 0) or step == t.steps:
            if eval_batches:
                eval_metrics = evaluate(state)
                last_eval = eval_metrics.get("eval_loss")
                log.write({"step": step, **eval_metrics})
                log.console(step, eval_metrics)
        stop = preemption.agreed()  # once per step, on every process: all of them save this same step
        if step % c.checkpoint.every == 0 or step == t.steps or stop:
            save(step, force=stop)
        if stop:
            ckpts.close()
            log.close()
            raise preemption.Preempted(f"stage {name}: checkpoint {ckpts.step_dir(step)} written after SIGTERM")
    if ckpts.latest_step() is None or ckpts.latest_step() < t.steps:
        save(t.steps)
    ckpts.close()
    log.close()

    final_model = nnx.merge(graphdef, state["params"], frozen)
    if jax.process_count() > 1 and (c.export_hf or c.eval.tasks):  # every process joins the gather; 0 writes
        final_model = nnx.merge(graphdef, host_copy(state["params"]), host_copy(frozen))
    hf_dir = None
    if c.export_hf and is_main:
        hf_dir = os.path.join(stage_dir, "hf")
        save_hf_model(exportable_model(final_model), hf_dir, tokenizer)
    benchmark = None
    if c.eval.tasks and is_main:
        benchmark = run_benchmarks(c, final_model, tokenizer, stage_dir)
    return StageResult(
        name=name, stage_dir=stage_dir, steps=t.steps, first_loss=first_loss, last_loss=last_loss,
        first_eval_loss=first_eval, last_eval_loss=last_eval, wall_time_s=round(time.time() - start_time, 1),
        checkpoint=ckpts.step_dir(t.steps), hf_dir=hf_dir, data_stats=train_it.stats(),
        token_counts=train_it.token_counts(), eval_metrics=eval_metrics, benchmark=benchmark)


def run_benchmarks(c, model, tokenizer, stage_dir: str) -> dict:
    """The end-of-stage benchmark evaluation (config.eval), written to <stage>/eval.json."""
    from medjax.api import LM
    from medjax.eval.harness import evaluate

    lm = LM(model, tokenizer, spec=f"ckpt:{stage_dir}")
    e = c.eval
    return evaluate(lm, e.tasks, e.data_dir, method=e.method, shots=e.shots, limit=e.limit,
                    batch_size=e.batch_size, output=os.path.join(stage_dir, "eval.json"))
