"""The trainer end to end: exact resume, damaged checkpoints, NaN stops, SIGTERM, config errors, exports."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a tiny model and few steps: each run compiles in seconds on 2 cores
TINY = ["--config.model.preset=test", "--config.train.seq_len=64", "--config.train.batch_size=4",
        "--config.train.log_every=1", "--config.train.eval_every=0", "--config.train.eval_batches=2",
        "--config.train.warmup_steps=2", "--config.export_hf=False"]


def run_main(workdir, *flags, config="configs/cp.py", check=True, wait=True):
    cmd = [sys.executable, "-m", "medjax.main", f"--config={config}", f"--workdir={workdir}", *TINY, *flags]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def losses(workdir, stage="cp"):
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def wait_for_checkpoint(workdir, step, proc, timeout=300):
    path = os.path.join(workdir, "cp", "checkpoints", str(step))
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(path) and proc.poll() is None:
            return path
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {path} within {timeout}s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("full"))
    run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4")
    return workdir


def test_uninterrupted_run_learns_and_writes_the_layout(uninterrupted):
    l = losses(uninterrupted)
    assert sorted(l) == list(range(1, 13))
    assert l[12] < l[1]
    stage = os.path.join(uninterrupted, "cp")
    for name in ("checkpoints", "metrics.jsonl", "tensorboard", "model_config.json", "tokenizer", "lineage.json"):
        assert os.path.exists(os.path.join(stage, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(stage, "tensorboard")))
    summary = json.load(open(os.path.join(uninterrupted, "summary.json")))["stages"]["cp"]
    assert summary["steps"] == 12 and summary["last_loss"] < summary["first_loss"]
    assert summary["checkpoint"].endswith("checkpoints/12")
    lineage = json.load(open(os.path.join(stage, "lineage.json")))
    assert lineage["stage"] == "cp" and lineage["parent"] == "scratch" and lineage["tokenizer_fingerprint"]
    records = [json.loads(line) for line in open(os.path.join(stage, "metrics.jsonl"))]
    assert {"step", "eval_loss"} <= set(records[0])  # the step-0 evaluation
    assert {"step", "loss", "lr", "tokens_per_s"} <= set(records[1])


def test_sigkill_then_rerun_resumes_exactly(uninterrupted, tmp_path):
    workdir = str(tmp_path)
    proc = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4",
                    "--config.checkpoint.async_save=False", wait=False)
    wait_for_checkpoint(workdir, 4, proc)
    time.sleep(0.5)  # let it run past the checkpoint so the kill loses work
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4")
    resumed, reference = losses(workdir), losses(uninterrupted)
    assert sorted(resumed) == sorted(reference)
    for step in reference:
        assert resumed[step] == pytest.approx(reference[step], abs=1e-6), step


def test_damaged_latest_checkpoint_falls_back_to_the_previous(uninterrupted, tmp_path):
    import shutil

    workdir = str(tmp_path / "run")
    shutil.copytree(uninterrupted, workdir)
    latest = os.path.join(workdir, "cp", "checkpoints", "12", "params")
    for root, _, files in os.walk(latest):  # truncate every data file of the params item
        for f in files:
            open(os.path.join(root, f), "w").close()
    proc = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4")
    assert os.path.join("checkpoints", "12") in proc.stdout and "damaged" in proc.stdout
    assert "resumed from" in proc.stdout and os.path.join("checkpoints", "8") in proc.stdout
    assert any(d.startswith("corrupt-12") for d in os.listdir(os.path.join(workdir, "cp", "checkpoints")))
    np.testing.assert_allclose(losses(workdir)[12], losses(uninterrupted)[12], atol=1e-6)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path):
    workdir = str(tmp_path)
    proc = run_main(workdir, "--config.train.steps=6", "--config.checkpoint.every=1", "--config.train.lr=1e30",
                    "--config.train.warmup_steps=0", "--config.train.clip_norm=0", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "loss became" in out and "Last good checkpoint" in out
    import re

    bad_step = int(re.search(r"loss became \S+ at step (\d+)", out).group(1))
    ckpt_dir = os.path.join(workdir, "cp", "checkpoints")
    steps = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
    assert steps and max(steps) < bad_step  # nothing was saved from the failing step
    assert os.path.join(ckpt_dir, str(max(steps))) in out
    import medjax

    medjax.load(f"ckpt:{workdir}/cp")  # the last good checkpoint restores


def test_sigterm_checkpoints_and_exits_zero(tmp_path):
    workdir = str(tmp_path)
    proc = run_main(workdir, "--config.train.steps=400", "--config.checkpoint.every=200", wait=False)
    metrics = os.path.join(workdir, "cp", "metrics.jsonl")
    deadline = time.time() + 300
    while not (os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "preempted" in out
    steps = [int(d) for d in os.listdir(os.path.join(workdir, "cp", "checkpoints")) if d.isdigit()]
    assert steps and 0 < max(steps) < 400


@pytest.mark.parametrize("flag, message", [
    ("--config.train.stepz=3", "stepz"),
    ("--config.train.steps=many", "steps"),
    ("--config.train.steps=0", "config.train.steps"),
    ("--config.model.init=s3:bucket", "config.model.init"),
])
def test_bad_config_is_an_error_naming_the_key(tmp_path, flag, message):
    proc = run_main(str(tmp_path), flag, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not os.path.exists(os.path.join(tmp_path, "cp", "checkpoints"))
