"""python -m medjax.report on hand-written run directories (no model): what the page and plots hold, what is
left out with a note, token shares from cumulative counts. tests/test_recipes.py renders a real run."""
import json
import subprocess
import sys

import numpy as np
import pytest

from PIL import Image  # matplotlib (the report extra, in the test extra too) brings pillow

from medjax.train.report_html import write_report
from medjax.train.report_plots import token_shares
from medjax.train.run_record import read_run  # noqa: E402


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _stage(workdir, name, parent, steps, sources, eval_report=None):
    d = workdir / name
    _write(d / "lineage.json", {"stage": name, "parent": parent})
    lines, counts = [{"step": 0, "eval_loss": 5.0}], dict.fromkeys(sources, 0)
    for step in range(10, steps + 1, 10):
        for i, s in enumerate(sources):  # the first source supplies a shrinking share
            counts[s] += 100 * (i + 1) if step > steps // 2 else 100 * (len(sources) - i)
        lines.append({"step": step, "loss": 5.0 - step / steps, **{f"tokens/{s}": n for s, n in counts.items()}})
    lines.append({"step": steps, "eval_loss": 4.0})
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if eval_report:
        _write(d / "eval.json", eval_report)
    return {"steps": steps, "first_loss": 5.0, "last_loss": 4.0, "wall_time_s": 1.0}


def _eval(method, accuracy):
    return {"method": method, "tasks": {"medqa": {"n": 60, "accuracy": accuracy, "chance": 0.25,
                                                  "majority": 0.32, "split": "sample"}}}


@pytest.fixture
def two_stage_run(tmp_path):
    """cp (no benchmark) -> ift (loglik, plus a voc report): as medjax.main leaves a run directory."""
    stages = {"cp": _stage(tmp_path, "cp", "scratch", 40, ["corpus"]),
              "ift": _stage(tmp_path, "ift", f"ckpt:{tmp_path}/cp", 20, ["web", "sft"], _eval("loglik", 0.4))}
    _write(tmp_path / "ift" / "eval.voc.json", _eval("voc", 0.45))
    _write(tmp_path / "summary.json", {"workdir": str(tmp_path), "stages": stages})
    return tmp_path


def _not_blank(path):
    pixels = np.asarray(Image.open(path).convert("L"), np.float32)
    return pixels.shape[0] > 100 and (pixels < 200).mean() > 0.01


def test_report_names_each_stage_and_leaves_out_what_is_missing_with_a_note(two_stage_run):
    index = write_report(str(two_stage_run))
    page = open(index).read()
    assert index == str(two_stage_run / "report" / "index.html")
    assert "<td>cp</td>" in page and "<td>ift</td>" in page
    assert "stage cp: no eval.json" in page  # no benchmark after cp: a note, no row
    assert "<td>ift</td><td>medqa</td><td>sample</td><td>60</td><td>0.4000</td><td>0.4500</td>" in page
    for png in ("losses.png", "accuracy.png", "token_shares.png", "lineage.png"):
        assert _not_blank(two_stage_run / "report" / png), png


def test_steps_continue_across_stages_and_token_shares_come_from_count_increments(two_stage_run):
    run = read_run(str(two_stage_run))
    assert [(s.name, s.offset, s.steps) for s in run.stages] == [("cp", 0, 40), ("ift", 40, 20)]
    assert run.stages[1].parent == f"ckpt:{two_stage_run}/cp" and set(run.stages[1].evals) == {"loglik", "voc"}
    sources, steps, shares = token_shares(run)
    assert sources == ["corpus", "web", "sft"] and steps == [10, 20, 30, 40, 50, 60]  # earliest-drawn first
    assert shares[0][:4] == [1.0] * 4  # cp draws only its corpus
    web, sft = shares[1][4:], shares[2][4:]
    assert web == [2 / 3, 1 / 3] and sft == [1 / 3, 2 / 3]  # per-interval increments, not running totals


def test_a_run_without_benchmarks_or_token_counts_still_gets_a_page(tmp_path):
    d = tmp_path / "ift"
    _write(d / "lineage.json", {"stage": "ift", "parent": "hf:/models/llama"})
    (d / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    page = open(write_report(str(tmp_path))).read()
    assert "accuracy.png: nothing to draw" in page and "token_shares.png: nothing to draw" in page
    assert not (tmp_path / "report" / "accuracy.png").exists()
    assert _not_blank(tmp_path / "report" / "losses.png")


def test_cli_refuses_a_directory_that_is_not_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "medjax.report", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "not a medjax run directory" in proc.stderr
    assert "Traceback" not in proc.stderr
