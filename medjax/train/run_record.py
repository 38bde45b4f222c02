"""What a run directory says about its stages, read back for the run report (medjax/train/report_html.py).

Reads WORKDIR/summary.json (stage order, steps, wall time), and per stage <stage>/metrics.jsonl,
<stage>/lineage.json, <stage>/eval.json and <stage>/eval.<method>.json (medjax/train/benchmarks.py).
Anything missing is left out and recorded in `notes`; only a directory with no stage at all is an error.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os


@dataclasses.dataclass
class StageRecord:
    name: str
    directory: str
    offset: int = 0  # steps of the earlier stages: this stage's step s is global step offset + s
    steps: int = 0
    metrics: list[dict] = dataclasses.field(default_factory=list)
    parent: str | None = None  # the spec this stage started from (lineage.json)
    evals: dict[str, dict] = dataclasses.field(default_factory=dict)  # method -> eval report
    summary: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunRecord:
    workdir: str
    stages: list[StageRecord]
    notes: list[str]


def read_run(workdir: str) -> RunRecord:
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: no such run directory")
    notes: list[str] = []
    summary = _read_json(os.path.join(workdir, "summary.json"), notes) or {}
    names = list((summary.get("stages") or {}))
    # stage directories that summary.json does not list yet (a run still going), oldest first
    found = sorted((d for d in os.listdir(workdir) if os.path.exists(os.path.join(workdir, d, "lineage.json"))),
                   key=lambda d: os.path.getmtime(os.path.join(workdir, d, "lineage.json")))
    names += [d for d in found if d not in names]
    if not names:
        raise FileNotFoundError(f"{workdir}: neither summary.json nor any <stage>/lineage.json: not a medjax run "
                                "directory (python -m medjax.main --workdir=...)")
    stages, offset = [], 0
    for name in names:
        stage = _read_stage(workdir, name, (summary.get("stages") or {}).get(name) or {}, notes)
        stage.offset = offset
        offset += stage.steps
        stages.append(stage)
    return RunRecord(workdir, stages, notes)


def _read_stage(workdir: str, name: str, summary: dict, notes: list[str]) -> StageRecord:
    directory = os.path.join(workdir, name)
    stage = StageRecord(name, directory, summary=summary)
    stage.metrics = _read_metrics(os.path.join(directory, "metrics.jsonl"), notes)
    logged = max((int(m["step"]) for m in stage.metrics if "step" in m), default=0)
    stage.steps = int(summary.get("steps") or logged)
    lineage = _read_json(os.path.join(directory, "lineage.json"), notes)
    stage.parent = (lineage or {}).get("parent")
    main_report = os.path.join(directory, "eval.json")
    if os.path.exists(main_report):
        report = _read_json(main_report, notes)
        if report:
            stage.evals[report.get("method", "loglik")] = report
        for path in sorted(glob.glob(os.path.join(directory, "eval.*.json"))):
            report = _read_json(path, notes)
            if report:
                stage.evals[report.get("method") or os.path.basename(path)[5:-5]] = report
    else:
        notes.append(f"stage {name}: no eval.json (no benchmark after this stage: config.eval.tasks was empty "
                     "or the stage has not finished)")
    return stage


def _read_metrics(path: str, notes: list[str]) -> list[dict]:
    if not os.path.exists(path):
        notes.append(f"{path}: missing")
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                notes.append(f"{path}:{n}: not JSON, skipped")
    return records


def _read_json(path: str, notes: list[str]) -> dict | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        notes.append(f"{path}: unreadable JSON ({e}), left out")
        return None
