"""The end-of-stage benchmark evaluation (config.eval), with one or several scoring methods.

`eval.method` is one method or a comma-separated list ("loglik,voc": AntGLM-Med's Verification-of-Choice
beside plain log-likelihood). The first method's report is <stage>/eval.json, as with one method; each
further method writes <stage>/eval.<method>.json, and a table puts every method's accuracy side by side
with the chance and majority baselines. `eval.max_reason_tokens` (optional key) bounds VoC arguments and
chain-of-thought paths.

`eval.chat_template` decides how prompts are wrapped: "none" (the default) leaves them bare;
"as_trained" wraps them the way the stage's training records were (the stage's `data.template` for
sft and pref stages, None there meaning "auto": the template training picked; bare for "plain",
whose records are the evaluation's own prompts), bare after an lm stage; "auto" or a template name
choose directly. The evaluation puts its `Answer:` cue after the
template's assistant header, so "as_trained" helps a model whose answers were trained to follow it.
"""
from __future__ import annotations

import os

REPORT = "eval.json"


def eval_methods(method: str) -> list[str]:
    from medjax.eval.harness import METHODS

    methods = [m.strip() for m in str(method).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown or len(set(methods)) != len(methods):
        raise ValueError(f"config.eval.method={method!r}: expected one or several (comma-separated, distinct) of "
                         f"{', '.join(METHODS)}")
    return methods


def stage_chat_template(c, stage: str) -> str | None:
    """The chat template (argument of medjax.eval's evaluate) for the stage's benchmarks."""
    from medjax.train.config import stage_data

    choice = c.eval.get("chat_template", "none")
    if choice == "none":
        return None
    if choice != "as_trained":
        return choice
    if c[stage].kind not in ("sft", "pref"):
        return None
    template = stage_data(c, stage).get("template") or "auto"
    return None if template == "plain" else template  # "plain" records are the bare prompts themselves


def report_path(stage_dir: str, method: str, first: bool) -> str:
    return os.path.join(stage_dir, REPORT if first else f"eval.{method}.json")


def run_benchmarks(c, model, tokenizer, stage_dir: str) -> dict:
    """Evaluates the stage's final model with every method of config.eval.method; returns the first
    method's report, with `by_method` ({method: {task: result}}) when there are several."""
    from medjax.api import LM
    from medjax.eval.harness import evaluate

    e = c.eval
    methods = eval_methods(e.method)
    chat_template = stage_chat_template(c, os.path.basename(os.path.normpath(stage_dir)))
    lm = LM(model, tokenizer, spec=f"ckpt:{stage_dir}")
    reports = {}
    for i, method in enumerate(methods):
        reports[method] = evaluate(lm, e.tasks, e.data_dir, method=method, shots=e.shots, limit=e.limit,
                                   batch_size=e.batch_size, max_reason_tokens=e.get("max_reason_tokens", 256),
                                   chat_template=chat_template, output=report_path(stage_dir, method, i == 0))
    report = dict(reports[methods[0]])
    if len(methods) > 1:
        report["by_method"] = {m: r["tasks"] for m, r in reports.items()}
        print(method_table(report["by_method"]), flush=True)
    return report


def method_table(by_method: dict) -> str:
    """task | n | accuracy per method | chance | majority."""
    methods = list(by_method)
    first = by_method[methods[0]]
    rows = [["task", "n", *methods, "chance", "majority"]]
    for task, result in first.items():
        cells = [task, str(result.get("n", "-"))]
        for m in methods:
            acc = by_method[m].get(task, {}).get("accuracy")
            cells.append("-" if acc is None else f"{acc:.4f}")
        for key in ("chance", "majority"):
            cells.append("-" if result.get(key) is None else f"{result[key]:.4f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(["accuracy by method", lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def benchmark_line(report: dict) -> str:
    """One line of a stage's benchmark report for the run summary: each task's accuracy by the first
    method, the other methods' beside it, and the baselines: `medqa=0.667 (n=60; cloze; loglik 0.267;
    chance 0.250, majority 0.317)`."""
    tasks = {task: result for task, result in report.get("tasks", report).items() if isinstance(result, dict)}
    by_method = report.get("by_method") or {report.get("method"): tasks}
    first, *others = by_method
    parts = []
    for task, result in by_method[first].items():
        notes = [f"n={result.get('n')}"] + ([first] if first else [])
        notes += [f"{m} {by_method[m][task]['accuracy']:.3f}" for m in others
                  if by_method[m].get(task, {}).get("accuracy") is not None]
        baselines = [f"{key} {result[key]:.3f}" for key in ("chance", "majority") if result.get(key) is not None]
        notes += [", ".join(baselines)] if baselines else []
        parts.append(f"{task}={result.get('accuracy', float('nan')):.3f} ({'; '.join(notes)})")
    return ", ".join(parts)
