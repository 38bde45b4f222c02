"""The trainer end to end: exact resume after a kill or SIGTERM, damaged checkpoints, a changed model, NaN stops,
config errors."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a tiny model and few steps: each run compiles in seconds on 2 cores
TINY = ["--config.model.preset=test", "--config.train.seq_len=64", "--config.train.batch_size=4",
        "--config.train.log_every=1", "--config.train.eval_every=0", "--config.train.eval_batches=2",
        "--config.train.warmup_steps=2", "--config.export_hf=False"]


def run_main(workdir, *flags, config="configs/cp.py", check=True, signal_at=None):
    """signal_at=("SIGKILL", 6): the run signals itself right after logging step 6 (tests/signal_at_step.py)."""
    main = ["tests.signal_at_step", *map(str, signal_at)] if signal_at else ["medjax.main"]
    cmd = [sys.executable, "-m", *main, f"--config={config}", f"--workdir={workdir}", *TINY, *flags]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def losses(workdir, stage="cp"):
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def logged_steps(workdir, stage="cp"):
    """Every step of metrics.jsonl in file order: a step logged twice shows up twice."""
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        return [r["step"] for r in map(json.loads, f) if "loss" in r]


def checkpoint_steps(workdir, stage="cp"):
    return sorted(int(d) for d in os.listdir(os.path.join(workdir, stage, "checkpoints")) if d.isdigit())


def assert_same_losses(workdir, reference):
    assert logged_steps(workdir) == sorted(losses(reference))
    resumed, expected = losses(workdir), losses(reference)
    for step in expected:
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step


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
    # a save step is read together with the step before it: both must get a real rate, not tokens / ~0 s
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r and r["step"] > 1]
    assert len(rates) == 11 and max(rates) < 20 * sorted(rates)[len(rates) // 2], rates


def test_sigkill_mid_run_then_rerun_resumes_exactly(uninterrupted, tmp_path):
    workdir = str(tmp_path)
    os.makedirs(os.path.join(workdir, "cp"))
    with open(os.path.join(workdir, "cp", "metrics.jsonl"), "w") as f:  # from a run killed before its first checkpoint
        f.write('{"step": 0, "eval_loss": 9.0}\n{"step": 1, "loss": 9.0}\n')
    killed = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4",
                      "--config.checkpoint.async_save=False", signal_at=("SIGKILL", 6), check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert checkpoint_steps(workdir) == [4]  # steps 5 and 6 are lost work
    out = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4").stdout
    assert f"resumed from {os.path.join(workdir, 'cp', 'checkpoints', '4')} (step 4)" in out
    assert "dropping a half-written last line" in out
    assert_same_losses(workdir, uninterrupted)  # each step once, as if never interrupted


def test_damaged_latest_checkpoint_falls_back_to_the_previous(uninterrupted, tmp_path):
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


def test_nan_stops_naming_a_checkpoint_that_is_good(tmp_path):
    import orbax.checkpoint as ocp

    import medjax

    workdir = str(tmp_path)
    # warmup: step 1's update is 0 (checkpoint 1 = the initial weights); step 2's lr of 5e29 blows the weights up
    proc = run_main(workdir, "--config.train.steps=6", "--config.checkpoint.every=1", "--config.train.lr=1e30",
                    "--config.train.clip_norm=0", check=False)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "Last good checkpoint" in out, out[-3000:]
    named = re.search(r"Last good checkpoint: (\S+?)[;( ]", out).group(1)
    ckpt_dir = os.path.join(workdir, "cp", "checkpoints")
    assert named == os.path.join(ckpt_dir, str(max(checkpoint_steps(workdir))))  # ckpt:<stage> loads it
    lm = medjax.load(f"ckpt:{workdir}/cp")
    assert np.isfinite(lm.logits(np.arange(1, 17, dtype=np.int32)[None])).all()
    for d in os.listdir(ckpt_dir):  # no checkpoint written, kept or moved aside, holds a non-finite number
        params = ocp.PyTreeCheckpointer().restore(os.path.join(ckpt_dir, d, "params"))
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params)), d


def test_sigterm_checkpoints_exits_zero_and_the_rerun_resumes_exactly(uninterrupted, tmp_path):
    workdir = str(tmp_path)
    proc = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4", signal_at=("SIGTERM", 6))
    assert "preempted" in proc.stdout
    preempted_at = max(checkpoint_steps(workdir))
    assert 6 <= preempted_at < 12  # the step the processes agreed on, past the regular checkpoint 4
    out = run_main(workdir, "--config.train.steps=12", "--config.checkpoint.every=4").stdout
    assert f"resumed from {os.path.join(workdir, 'cp', 'checkpoints', str(preempted_at))}" in out
    assert_same_losses(workdir, uninterrupted)


def test_a_changed_model_is_an_error_that_moves_nothing(uninterrupted, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(uninterrupted, workdir)
    ckpt_dir = os.path.join(workdir, "cp", "checkpoints")
    before = sorted(os.listdir(ckpt_dir))
    config_before = open(os.path.join(workdir, "cp", "model_config.json")).read()
    proc = run_main(workdir, "--config.train.steps=12", "--config.model.preset=tiny", check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert re.search(r"params key '\S+': saved shape \(\d+, 32\), configured shape \(\d+, 128\)", err), err[-3000:]
    assert "model_config.json (" in err and "hidden_size: saved 32, configured 128" in err
    assert sorted(os.listdir(ckpt_dir)) == before  # no step moved aside as corrupt
    assert open(os.path.join(workdir, "cp", "model_config.json")).read() == config_before  # still the saved model


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
