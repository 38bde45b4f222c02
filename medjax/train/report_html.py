"""The run report: WORKDIR/report/index.html with its PNG plots (medjax/train/report_plots.py).

    from medjax.train.report_html import write_report
    path = write_report("runs/antglm_med")     # -> runs/antglm_med/report/index.html

The page names every stage, tabulates losses and benchmark accuracy (every scoring method of a stage
side by side, with chance and majority), and shows four plots: losses on one step axis with the stage
boundaries, accuracy after each stage, token shares per data source, the stage lineage. What the run
lacks (a stage without eval.json, say) is left out with a note. Needs matplotlib
(`pip install 'medjax[report]'`).
"""
from __future__ import annotations

import html
import os

from medjax.train.run_record import RunRecord, read_run

PLOTS = (  # (file, caption, plot function name in report_plots)
    ("losses.png", "Training and held-out loss of every stage on one step axis; dotted lines mark where a "
                   "stage begins.", "plot_losses"),
    ("accuracy.png", "Benchmark accuracy after each stage, per scoring method, beside the chance and "
                     "majority-class baselines.", "plot_accuracy"),
    ("token_shares.png", "Share of the training tokens each data source supplied between logged steps "
                         "(priority sampling drains high-priority sources first).", "plot_token_shares"),
    ("lineage.png", "Which weights each stage started from.", "plot_lineage"),
)


def write_report(workdir: str, out_dir: str | None = None) -> str:
    try:
        from medjax.train import report_plots
    except ImportError as e:
        raise ImportError(f"the run report draws with matplotlib ({e}): pip install 'medjax[report]'") from None
    run = read_run(workdir)
    out_dir = out_dir or os.path.join(run.workdir, "report")
    os.makedirs(out_dir, exist_ok=True)
    figures, notes = [], list(run.notes)
    for filename, caption, function in PLOTS:
        path = os.path.join(out_dir, filename)
        if getattr(report_plots, function)(run, path):
            figures.append((filename, caption))
        else:
            notes.append(f"{filename}: nothing to draw ({caption.split(';')[0].rstrip('.')} not in the run)")
            if os.path.exists(path):
                os.remove(path)  # left by an earlier report of this run
    index = os.path.join(out_dir, "index.html")
    with open(index + ".tmp", "w", encoding="utf-8") as f:
        f.write(render_html(run, figures, notes))
    os.replace(index + ".tmp", index)
    return index


def render_html(run: RunRecord, figures: list[tuple[str, str]], notes: list[str]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>medjax run {e(run.workdir)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}</style></head><body>",
             f"<h1>Run report</h1><p><code>{e(run.workdir)}</code> &middot; stages: "
             f"{', '.join(e(s.name) for s in run.stages)}</p>",
             "<h2>Stages</h2>", _stage_table(run), "<h2>Benchmarks</h2>", _benchmark_table(run)]
    for filename, caption in figures:
        parts.append(f"<figure><img src='{e(filename)}' alt='{e(caption)}'><figcaption>{e(caption)}</figcaption>"
                     "</figure>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _stage_table(run: RunRecord) -> str:
    rows = []
    for s in run.stages:
        summary = s.summary
        rows.append([s.name, s.parent or "-", str(s.steps), _fmt(summary.get("first_loss")),
                     _fmt(summary.get("last_loss")), _fmt(summary.get("first_eval_loss")),
                     _fmt(summary.get("last_eval_loss")), _fmt(summary.get("wall_time_s"), 1)])
    return _table(["stage", "started from", "steps", "first loss", "last loss", "first eval loss",
                   "last eval loss", "wall s"], rows)


def _benchmark_table(run: RunRecord) -> str:
    """One row per (stage, task): accuracy of each method side by side, then the baselines."""
    methods = list(dict.fromkeys(m for s in run.stages for m in s.evals))
    if not methods:
        return "<p>No stage wrote eval.json (set config.eval.tasks to evaluate after each stage).</p>"
    rows = []
    for s in run.stages:
        tasks = list(dict.fromkeys(t for r in s.evals.values() for t in r.get("tasks", {})))
        for task in tasks:
            results = {m: s.evals.get(m, {}).get("tasks", {}).get(task) or {} for m in methods}
            first = next(r for r in results.values() if r)
            rows.append([s.name, task, _fmt(first.get("split")), _fmt(first.get("n")),
                         *(_fmt(results[m].get("accuracy")) for m in methods),
                         _fmt(first.get("chance")), _fmt(first.get("majority"))])
    return _table(["after stage", "task", "split", "n", *(f"accuracy ({m})" for m in methods), "chance",
                   "majority"], rows)
