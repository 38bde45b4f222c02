"""A stage starts from its parent's FINAL weights: a parent that stopped part-way is an error saying what to do."""
import json
import os
import subprocess
import sys

import pytest

from medjax.checkpoint.manager import CheckpointError
from medjax.train.model_init import finished_stage_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_stage(stage_dir, configured_steps, saved_steps):
    """What the trainer leaves behind: lineage.json (with the config it ran with) and checkpoints/<step>."""
    for step in saved_steps:
        os.makedirs(os.path.join(stage_dir, "checkpoints", str(step)))
    os.makedirs(stage_dir, exist_ok=True)
    with open(os.path.join(stage_dir, "lineage.json"), "w") as f:
        json.dump({"stage": "cp", "config": {"cp": {"steps": configured_steps}, "train": {"steps": 500}}}, f)
    return str(stage_dir)


def test_a_finished_parent_is_its_ckpt_spec(tmp_path):
    stage = fake_stage(tmp_path / "cp", 8, [4, 8])
    assert finished_stage_spec(stage, "ift") == f"ckpt:{stage}"


def test_a_parent_that_never_ran_is_none(tmp_path):
    assert finished_stage_spec(str(tmp_path / "cp"), "ift") is None


def test_a_parent_stopped_half_way_is_an_error_saying_what_to_do(tmp_path):
    stage = fake_stage(tmp_path / "cp", 8, [2, 4])
    with pytest.raises(CheckpointError) as e:
        finished_stage_spec(stage, "ift")
    msg = str(e.value)
    assert f"({stage}) stopped at step 4 of its 8 configured steps" in msg
    assert os.path.join(stage, "checkpoints", "4") in msg and "--config.stages=cp" in msg
    assert f"--config.ift.parent= --config.model.init=ckpt:{stage}" in msg


def test_a_parent_killed_before_its_first_checkpoint_is_an_error(tmp_path):
    stage = fake_stage(tmp_path / "cp", 8, [])
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        finished_stage_spec(stage, "ift")


def test_the_subset_run_stops_with_the_message(tmp_path):
    fake_stage(tmp_path / "cp", 150, [50])  # the cp of configs/cp_ift.py, stopped at its first checkpoint
    proc = subprocess.run([sys.executable, "-m", "medjax.main", "--config=configs/cp_ift.py", f"--workdir={tmp_path}",
                           "--config.stages=ift"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "error: parent stage 'cp'" in proc.stderr and "stopped at step 50 of its 150 configured steps" in proc.stderr
    assert not os.path.exists(tmp_path / "ift" / "checkpoints")
