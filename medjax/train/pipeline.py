"""The stage graph: runs the config's stages in order, each starting from the previous one's weights."""
from __future__ import annotations

import json
import os
import time

import jax

from medjax.parallel.mesh import make_mesh
from medjax.train import preemption, vocab_step
from medjax.train.benchmarks import benchmark_line
from medjax.train.config import stage_names, validate
from medjax.train.model_init import finished_stage_spec
from medjax.train.stage import run_stage


def _read_summary(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"stages": {}}


def _write_summary(path: str, summary: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2, sort_keys=False, default=str)
    os.replace(path + ".tmp", path)


def _earlier_stage(workdir: str, stage: str, next_stage: str) -> tuple[str | None, dict | None]:
    """(ckpt: spec, lineage) of a stage that finished in `workdir`, or (None, None) if it never ran;
    raises if it stopped part-way."""
    stage_dir = os.path.join(workdir, stage)
    spec = finished_stage_spec(stage_dir, next_stage)
    if spec is None:
        print(f"note: parent stage {stage!r} never ran in {workdir}; starting from config.model.init", flush=True)
        return None, None
    with open(os.path.join(stage_dir, "lineage.json")) as f:
        return spec, json.load(f)


def run(c, workdir: str) -> dict:
    """Runs every stage named by config.stages; returns (and writes) WORKDIR/summary.json."""
    validate(c)
    preemption.install()
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    c = vocab_step.prepare(c, workdir)  # config.vocab: the extended tokenizer, built once
    is_main = jax.process_index() == 0
    mesh = make_mesh(c.mesh.data, c.mesh.fsdp, c.mesh.tensor)
    summary_path = os.path.join(workdir, "summary.json")
    summary = _read_summary(summary_path)
    summary["workdir"] = workdir
    all_stages = stage_names(c)
    parent_spec, parent_lineage = None, None
    for i, name in enumerate(all_stages):
        if i == 0 and c[name].parent:  # a subset run (--config.stages=ift) starts from its parent's run
            parent_spec, parent_lineage = _earlier_stage(workdir, c[name].parent, name)
        result = run_stage(c, name, workdir, mesh, parent_spec, parent_lineage, is_main)
        summary["stages"][name] = result.summary()
        summary["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        if is_main:
            _write_summary(summary_path, summary)
        if i + 1 < len(all_stages):
            parent_spec, parent_lineage = _earlier_stage(workdir, name, all_stages[i + 1])
    if is_main:
        print_summary(summary, [s for s in all_stages])
        if c.get("report", True):
            _write_report(workdir)
    return summary


def _write_report(workdir: str) -> None:
    from medjax.train.report_html import write_report

    try:
        print(f"report: {write_report(workdir)}", flush=True)
    except ImportError as e:  # matplotlib is an extra: the run itself is complete without it
        print(f"report: not written ({e})", flush=True)


def print_summary(summary: dict, stages: list[str]) -> None:
    rows = [("stage", "steps", "first loss", "last loss", "first eval", "last eval", "wall s")]
    fmt = lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    for name in stages:
        s = summary["stages"].get(name)
        if s:
            rows.append((name, s["steps"], fmt(s["first_loss"]), fmt(s["last_loss"]), fmt(s["first_eval_loss"]),
                         fmt(s["last_eval_loss"]), f"{s['wall_time_s']:.1f}"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    print("\nsummary (" + summary["workdir"] + "/summary.json)")
    for i, r in enumerate(rows):
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for name in stages:
        bench = (summary["stages"].get(name) or {}).get("benchmark")
        if bench:
            print(f"\n[{name}] benchmark accuracy: " + benchmark_line(bench))
