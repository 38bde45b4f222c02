"""The JSON report, the per-item predictions beside it, and the console table."""
from __future__ import annotations

import hashlib
import json
import os


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def predictions_path(output: str) -> str:
    """FILE.json -> FILE.predictions.jsonl"""
    stem = output[:-5] if output.endswith(".json") else output
    return stem + ".predictions.jsonl"


def write_report(report: dict, predictions: list[dict], output: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)
    with open(predictions_path(output), "w", encoding="utf-8") as f:
        for record in predictions:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


_COLUMNS = (("task", "{}"), ("split", "{}"), ("n", "{}"), ("accuracy", "{:.4f}"), ("acc_norm", "{:.4f}"),
            ("unparseable", "{}"), ("chance", "{:.4f}"), ("majority", "{:.4f}"),
            ("open_ended_score", "{:.4f}"), ("skipped", "{}"))


def format_table(report: dict) -> str:
    rows = [[name for name, _ in _COLUMNS]]
    for task, result in report["tasks"].items():
        values = dict(result, task=task)
        # open-ended items: ROUGE-L F1 (generate) or mean log-prob per reference token (loglik)
        values["open_ended_score"] = values.get("rouge_l_f1", values.get("mean_logprob_per_token"))
        rows.append([fmt.format(values[name]) if values.get(name) is not None else "-"
                     for name, fmt in _COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    title = f"method={report['method']} shots={report['shots']} model={report['model']}"
    return "\n".join([title, lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
