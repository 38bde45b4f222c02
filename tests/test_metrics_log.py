"""metrics.jsonl across restarts: a half-written last line, a resume, a fresh start."""
import json

import pytest

from medjax.train.metrics_log import MetricsLog


def logged(stage_dir, steps):
    log = MetricsLog(str(stage_dir), "cp", 10)
    for step in steps:
        log.write({"step": step, "loss": 1.0 / (step + 1)})
    log.close()


def steps_in(stage_dir):
    return [json.loads(line)["step"] for line in open(stage_dir / "metrics.jsonl")]


def test_resume_trims_a_half_written_last_line_with_a_warning(tmp_path, capsys):
    logged(tmp_path, [0, 1, 2, 3])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"loss": 0.2, "st')  # the kill landed mid-write
    log = MetricsLog(str(tmp_path), "cp", 10)
    log.resume_at(2)
    log.write({"step": 3, "loss": 0.25})
    assert steps_in(tmp_path) == [0, 1, 2, 3]
    assert "metrics.jsonl:5: dropping a half-written last line" in capsys.readouterr().out


def test_a_last_line_without_its_newline_is_kept_whole(tmp_path):
    logged(tmp_path, [0, 1])
    text = open(tmp_path / "metrics.jsonl").read()
    open(tmp_path / "metrics.jsonl", "w").write(text.rstrip("\n"))
    log = MetricsLog(str(tmp_path), "cp", 10)
    log.resume_at(1)
    log.write({"step": 2, "loss": 0.3})
    assert steps_in(tmp_path) == [0, 1, 2]


def test_a_bad_line_before_the_last_is_an_error_naming_the_line(tmp_path):
    logged(tmp_path, [0, 1])
    lines = open(tmp_path / "metrics.jsonl").readlines()
    open(tmp_path / "metrics.jsonl", "w").writelines([lines[0], "garbage\n", lines[1]])
    with pytest.raises(ValueError, match="metrics.jsonl:2: not a metrics record"):
        MetricsLog(str(tmp_path), "cp", 10).resume_at(1)


def test_a_fresh_start_rewrites_instead_of_appending(tmp_path):
    logged(tmp_path, [0, 1])  # a run that died before its first checkpoint
    log = MetricsLog(str(tmp_path), "cp", 10)
    log.start_fresh()
    log.write({"step": 0, "eval_loss": 2.0})
    log.write({"step": 1, "loss": 1.5})
    assert steps_in(tmp_path) == [0, 1]
