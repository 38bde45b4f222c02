"""The asynchronous step loop: batches made ahead on a thread (data.prefetch), metrics read late.

Same losses and the same saved data state as the synchronous loop; the reader really runs ahead of the
steps; a non-finite loss read late still stops the run soon, naming a checkpoint whose weights are finite.
"""
import json
import os
import re
import sys
import threading
import time

import jax
import numpy as np
import pytest

from medjax.data.prefetch import Prefetcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"model.preset": "test", "train.seq_len": 64, "train.batch_size": 4, "train.steps": 6, "train.log_every": 3,
        "train.eval_every": 0, "train.eval_batches": 1, "train.warmup_steps": 1, "export_hf": False,
        "checkpoint.async_save": False, "checkpoint.every": 100}


def tiny_cp(**overrides):
    sys.path.insert(0, os.path.join(ROOT, "configs"))
    import cp

    c = cp.get_config()
    for key, value in {**TINY, **overrides}.items():
        section, _, leaf = key.rpartition(".")
        (c[section] if section else c)[leaf] = value
    return c


def counting_reader(monkeypatch, drawn: list):
    """Wraps the stage's training iterator so each batch drawn is counted (from whichever thread)."""
    import medjax.train.stage as stage

    build = stage.build_train_iterator

    class Counted:
        def __init__(self, it):
            self.it = it

        def __next__(self):
            batch = next(self.it)
            drawn.append(threading.current_thread().name)
            return batch

        def __getattr__(self, name):
            return getattr(self.it, name)

    monkeypatch.setattr(stage, "build_train_iterator", lambda *a, **kw: Counted(build(*a, **kw)))


def run_tiny(workdir, prefetch: int, monkeypatch):
    """(losses by step, data state saved at the last step, {step: batches drawn when its metrics were read},
    names of the threads that drew the batches, the StageResult, the config)."""
    from medjax.parallel.mesh import make_mesh
    from medjax.train import loop
    from medjax.train.stage import run_stage

    drawn, drawn_at_read = [], {}
    counting_reader(monkeypatch, drawn)
    read = loop.LateMetrics.read

    def recording_read(self, upto):
        for step, *_ in self.pending:
            if step <= upto:
                drawn_at_read[step] = len(drawn)
        return read(self, upto)

    monkeypatch.setattr(loop.LateMetrics, "read", recording_read)
    c = tiny_cp()
    c.data.prefetch = prefetch
    result = run_stage(c, "cp", workdir, make_mesh(devices=jax.devices()[:1]))
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        losses = {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}
    with open(os.path.join(workdir, "cp", "checkpoints", "6", "meta", "metadata")) as f:
        data_state = json.load(f)["data"]
    return losses, data_state, drawn_at_read, drawn, result, c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        sync = run_tiny(str(tmp_path_factory.mktemp("sync")), 0, mp)
    with pytest.MonkeyPatch.context() as mp:
        ahead = run_tiny(str(tmp_path_factory.mktemp("ahead")), 2, mp)
    return {"sync": sync, "ahead": ahead}


def test_prefetch_gives_the_losses_and_saved_data_state_of_the_synchronous_loop(runs):
    (sync_losses, sync_state, _, sync_drawn, *_), (losses, state, _, drawn, *_) = runs["sync"], runs["ahead"]
    assert sorted(losses) == [1, 3, 6]  # the log steps
    assert losses == sync_losses  # bit for bit
    assert state == sync_state  # the state after batch 6, not after the batches made ahead
    assert set(sync_drawn) == {"MainThread"} and set(drawn) == {"prefetch"}


def test_metrics_are_read_late_and_only_when_a_step_needs_them(runs):
    # synchronous, so batches drawn = the step running. A log step's metrics are read one step late (log
    # steps 1, 3: read at steps 2, 4, with the steps before them); the last step saves: read at once.
    # Steps 1, 3 and 5 read nothing back from the devices.
    assert runs["sync"][2] == {1: 2, 2: 4, 3: 4, 4: 6, 5: 6, 6: 6}


def test_the_reader_runs_ahead_of_the_steps(runs):
    # prefetch 2: while step 1 compiled and ran, the thread drew batches 2 and 3
    assert runs["ahead"][2][1] >= 3


def test_a_rerun_after_the_last_step_reports_the_stages_results(runs):
    from medjax.parallel.mesh import make_mesh
    from medjax.train.stage import run_stage

    *_, first, c = runs["ahead"]
    again = run_stage(c, "cp", os.path.dirname(first.stage_dir), make_mesh(devices=jax.devices()[:1]))
    assert first.last_loss is not None and first.last_eval_loss is not None and first.eval_metrics
    for key in ("first_loss", "last_loss", "first_eval_loss", "last_eval_loss", "eval_metrics", "token_counts",
                "data_stats"):
        assert getattr(again, key) == getattr(first, key), key


def test_a_late_read_non_finite_loss_stops_soon_naming_a_finite_checkpoint(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    from medjax.parallel.mesh import make_mesh
    from medjax.train.nan_guard import NonFiniteLoss
    from medjax.train.stage import run_stage

    drawn = []
    counting_reader(monkeypatch, drawn)
    # a huge lr: the weights blow up within a few steps and the loss turns NaN (at step 4 here). A log every
    # 2 steps, a checkpoint every 5: losses are read at steps 2 (step 1's), 3 (step 2's), 5 (3 to 5: save)
    c = tiny_cp(**{"train.steps": 12, "train.warmup_steps": 2, "train.lr": 1e30, "train.clip_norm": 0.0,
                   "train.log_every": 2, "checkpoint.every": 5, "train.eval_batches": 0})
    c.data.prefetch = 0  # the batches drawn count the steps run
    with pytest.raises(NonFiniteLoss, match="Last good checkpoint") as e:
        run_stage(c, "cp", str(tmp_path), make_mesh(devices=jax.devices()[:1]))
    bad = int(re.search(r"loss became nan at step (\d+)", str(e.value)).group(1))
    assert bad < len(drawn) <= bad + c.train.log_every  # read late, and within log_every steps
    ckpt_dir = os.path.join(tmp_path, "cp", "checkpoints")
    kept = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
    assert all(step < bad - 1 for step in kept)  # checkpoint bad-1 gave the NaN: moved aside
    named = str(e.value).split("Last good checkpoint: ")[1]
    assert named.startswith(os.path.join(ckpt_dir, str(max(kept))) if kept else "none")
    for d in os.listdir(ckpt_dir):  # nothing written, kept or moved aside holds a non-finite number
        params = ocp.PyTreeCheckpointer().restore(os.path.join(ckpt_dir, d, "params"))
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params)), d


def test_prefetcher_keeps_order_is_bounded_and_hands_errors_over():
    made = []

    def make():
        made.append(len(made))
        if len(made) == 5:
            raise ValueError("bad record")
        return made[-1]

    feed = Prefetcher(make, count=10, depth=2)
    assert next(feed) == 0
    deadline = time.time() + 5
    while len(made) < 4 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(made) == 4  # one taken, two queued, one waiting for room: never more
    assert [next(feed), next(feed), next(feed)] == [1, 2, 3]
    with pytest.raises(ValueError, match="bad record"):
        next(feed)
    feed.close()


def test_prefetcher_close_stops_the_thread_and_depth_0_runs_inline():
    feed = Prefetcher(lambda: threading.current_thread().name, count=100, depth=3)
    assert next(feed) == "prefetch"
    feed.close()
    assert not any(t.name == "prefetch" for t in threading.enumerate())
    with Prefetcher(lambda: threading.current_thread().name, count=2, depth=0) as inline:
        assert list(inline) == ["MainThread", "MainThread"]


def test_bad_prefetch_value_names_the_key():
    from medjax.train.feed import prefetch_depth

    with pytest.raises(ValueError, match="data.prefetch"):
        prefetch_depth(tiny_cp(**{"data.prefetch": -1}).data)
