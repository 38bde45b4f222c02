"""Per-host data (data/host_shards.py): each process tokenizes and packs only its rows of the global
batch, the batch is assembled from every process's rows, the data state a checkpoint saves
holds every process's shards and resumes exactly; one process with the defaults is unchanged. And the
processes agree on a SIGTERM only at steps that read the devices anyway (train/preemption.py)."""
from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest
from test_data_fixtures import llama2_tokenizer  # noqa: F401  (fixture)
from test_multihost import FAST, _finish, _start, _two_processes

from medjax.data.config import data_config
from medjax.data.host_shards import ShardedIterator, merge_states
from medjax.data.pipeline import TrainIterator, build_train_iterator
from medjax.data.records import DataError

B = 4


def _sources(tmp_path):
    long_text = " ".join(f"word{i}" for i in range(120))  # longer than a row: split into pieces
    (tmp_path / "web.txt").write_text("\n\n".join([long_text] + [f"web page {i} about fever" for i in range(30)]))
    (tmp_path / "books.jsonl").write_text("".join(
        json.dumps({"text": f"book chapter {i} on anatomy " * (1 + i % 4)}) + "\n" for i in range(20)))
    (tmp_path / "stream.jsonl").write_text("".join(json.dumps({"text": f"streamed record {i}"}) + "\n"
                                                   for i in range(9)))
    return [{"name": "web", "path": str(tmp_path / "web.txt"), "weight": 3},
            {"name": "books", "path": str(tmp_path / "books.jsonl"), "weight": 1},
            {"name": "stream", "path": str(tmp_path / "stream.jsonl"), "streaming": True, "replay": 0.2}]


def _iterator(tmp_path, tokenizer, rows=None, **keys):
    cfg = data_config(train=_sources(tmp_path), pack_buffer=4, **keys)
    return build_train_iterator(cfg, tokenizer, kind="lm", seq_len=32, batch_size=B, seed=5, rows=rows)


def _assert_same(got: dict, expected: dict):
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_two_processes_build_half_the_rows_each_and_together_the_batches_of_one(tmp_path, llama2_tokenizer):
    whole = _iterator(tmp_path, llama2_tokenizer, shards=2)  # one process, two shards
    first, second = (_iterator(tmp_path, llama2_tokenizer, rows=rows) for rows in ([0, 1], [2, 3]))
    assert isinstance(first, ShardedIterator) and first.shards == 2  # data.shards 0: one per process
    for _ in range(5):
        a, b = next(first), next(second)
        assert a["tokens"].shape == (B // 2, 32)
        _assert_same({k: np.concatenate([a[k], b[k]]) for k in a}, next(whole))
    assert first.stats()["rows"] == second.stats()["rows"] == 5 * B // 2 and whole.stats()["rows"] == 5 * B
    # each shard tokenized records of its own: every shard-th one
    assert first.stats()["records_drawn"] + second.stats()["records_drawn"] == whole.stats()["records_drawn"]
    counts = first.token_counts()
    assert {k: counts[k] + second.token_counts()[k] for k in counts} == whole.token_counts()


def test_merged_state_resumes_each_process_and_any_layout_of_the_same_shards(tmp_path, llama2_tokenizer):
    first, second = (_iterator(tmp_path, llama2_tokenizer, rows=rows) for rows in ([0, 1], [2, 3]))
    for _ in range(3):
        next(first), next(second)
    saved = json.loads(json.dumps(merge_states([first.get_state(), second.get_state()])))
    assert saved["shards"] == 2 and sorted(saved["states"]) == ["0", "1"]
    expected = [{k: np.concatenate([a[k], b[k]]) for k in a} for a, b in
                ((next(first), next(second)) for _ in range(3))]
    again = [_iterator(tmp_path, llama2_tokenizer, rows=rows) for rows in ([0, 1], [2, 3])]
    whole = _iterator(tmp_path, llama2_tokenizer, shards=2)  # the same shards on one process
    for it in again + [whole]:
        it.set_state(saved)
    for batch in expected:
        a, b = next(again[0]), next(again[1])
        _assert_same({k: np.concatenate([a[k], b[k]]) for k in a}, batch)
        _assert_same(next(whole), batch)


def test_one_process_with_the_defaults_is_the_single_stream_and_its_state(tmp_path, llama2_tokenizer):
    plain = _iterator(tmp_path, llama2_tokenizer)
    every_row = _iterator(tmp_path, llama2_tokenizer, rows=list(range(B)))
    assert type(plain) is TrainIterator and type(every_row) is TrainIterator
    assert "shards" not in plain.get_state()  # checkpoints written before data.shards still resume
    for _ in range(3):
        _assert_same(next(every_row), next(plain))


def test_a_state_of_other_shards_and_bad_settings_are_refused(tmp_path, llama2_tokenizer):
    sharded = _iterator(tmp_path, llama2_tokenizer, rows=[0, 1])
    with pytest.raises(DataError, match="saved with data.shards=2, this run has 1; set data.shards=2"):
        _iterator(tmp_path, llama2_tokenizer, rows=[0, 1], shards=1).set_state(sharded.get_state())
    with pytest.raises(DataError, match="saved with data.shards=1, this run has 2"):
        sharded.set_state(_iterator(tmp_path, llama2_tokenizer).get_state())
    with pytest.raises(ValueError, match="data.shards=3: train.batch_size=4 is not a multiple"):
        _iterator(tmp_path, llama2_tokenizer, shards=3)
    with pytest.raises(DataError, match="'web' has 30 training records, fewer than data.shards=32"):
        build_train_iterator(data_config(train=_sources(tmp_path), shards=32), llama2_tokenizer, seq_len=32,
                             batch_size=32)


# -- SIGTERM agreed at the steps that read the devices ------------------------------------------
class _Checkpoints:
    def __init__(self):
        self.saved, self.ckpts = [], None

    def save(self, step, *args, force=False):
        self.saved.append((step, force))

    def step_dir(self, step):
        return f"checkpoints/{step}"

    def close(self):
        pass


def _fake_run(log_every=4, steps=40):
    from medjax.train.loop import StepRun

    log = types.SimpleNamespace(write=lambda record: None, console=lambda step, record: None, close=lambda: None)
    t = types.SimpleNamespace(steps=steps, log_every=log_every, eval_every=0)
    return StepRun(name="cp", t=t, checkpoint_every=100, train_step=lambda s, f, b, e: (s, {"loss": np.float32(1)}),
                   eval_step=None, extras={}, eval_batches=[], mesh=None, ckpts=_Checkpoints(), log=log)


@pytest.mark.parametrize("signal_step", [2, 5, 8, 9])
def test_processes_agree_on_sigterm_only_at_log_steps_and_stop_within_log_every(monkeypatch, signal_step):
    """Two processes, faked: the other process gets SIGTERM before step `signal_step`. The sums
    over processes are queued only at log (and save) steps, and both stop within log_every steps."""
    from medjax.train import loop, preemption
    from medjax.train.checkpointing import Progress
    from medjax.train.feed import DataView, Fed

    run, queued, now = _fake_run(), [], {"step": 0}
    monkeypatch.setattr(loop.jax, "process_count", lambda: 2)
    monkeypatch.setattr(preemption, "_requested", False)  # this process never sees the signal

    def sums(values):  # [flag, tokens, per source]: this process's, plus the other's (signalled or not)
        queued.append(now["step"])
        other = [float(now["step"] >= signal_step)] + list(values[1:])
        return np.asarray(values, np.float32) + np.asarray(other, np.float32)

    monkeypatch.setattr(loop, "sum_over_processes", sums)
    view = DataView({}, {"web": 10}, {})

    def feed():
        for step in range(1, run.t.steps + 1):
            now["step"] = step
            yield Fed(step, {}, 16, view, 0.5)

    with pytest.raises(preemption.Preempted) as stopped:
        loop.train_steps(run, {}, None, feed(), Progress(), view)
    stop = run.ckpts.saved[-1][0]
    assert run.ckpts.saved == [(stop, True)] and f"checkpoints/{stop}" in str(stopped.value)
    assert signal_step <= stop <= signal_step + run.t.log_every  # within log_every steps of the signal
    assert queued == [s for s in range(1, stop) if s == 1 or s % 4 == 0]  # log steps only, never the others


def test_one_process_stops_at_the_step_after_the_signal_without_any_sum(monkeypatch):
    from medjax.train import loop, preemption
    from medjax.train.checkpointing import Progress
    from medjax.train.feed import DataView, Fed

    run, view = _fake_run(), DataView({}, {}, {})
    monkeypatch.setattr(loop, "sum_over_processes", lambda values: pytest.fail("no cross-process sum on one"))
    monkeypatch.setattr(preemption, "_requested", False)

    def feed():
        for step in range(1, 10):
            if step == 6:
                monkeypatch.setattr(preemption, "_requested", True)
            yield Fed(step, {}, 16, view, 1.0)

    with pytest.raises(preemption.Preempted):
        loop.train_steps(run, {}, None, feed(), Progress(), view)
    assert run.ckpts.saved == [(6, True)]


# -- real processes --------------------------------------------------------------------------------
def _losses(workdir) -> dict:
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def _rows_packed(output: str) -> int:
    line = next(line for line in output.splitlines() if "rows packed" in line)
    return int(line.split(":")[1].split()[0])


def _runs(tmp_path, devices_each: int, base, steps: int, resume: bool):
    """Two processes train `steps` (with `resume`: to steps/2, a checkpoint, then on to `steps` in a
    second run); beside them one process with twice the devices trains `steps` at data.shards=2.
    Returns (the two processes' outputs of each run, their losses, the one process's, its rows)."""
    multi, single = str(tmp_path / "two_processes"), str(tmp_path / "one_process")
    flags = lambda n: [f"--config.train.steps={n}", f"--config.checkpoint.every={steps // 2}",  # noqa: E731
                       "--config.export_hf=False"]
    procs = _two_processes(multi, devices_each, *flags(steps // 2 if resume else steps), base=base)
    reference = _start(single, 2 * devices_each, {}, "--config.data.shards=2", *flags(steps), base=base)
    outputs = [_finish(procs + [reference])[:2]]
    if resume:
        outputs.append(_finish(_two_processes(multi, devices_each, *flags(steps), base=base)))
    with open(os.path.join(single, "summary.json")) as f:
        single_rows = json.load(f)["stages"]["cp"]["data_stats"]["rows"]
    return outputs, _losses(multi), _losses(single), single_rows


def _check(tmp_path, devices_each: int, base, batch: int, resume: bool):
    steps = 4
    outputs, multi, single, single_rows = _runs(tmp_path, devices_each, base, steps, resume)
    assert sorted(multi) == sorted(single) == list(range(1, steps + 1))
    np.testing.assert_allclose([multi[s] for s in multi], [single[s] for s in multi], atol=1e-5, rtol=0)
    # tokenized rows, counted on each process: half of the one process's (after a resume too)
    assert single_rows == steps * batch
    runs_steps = [steps // 2, steps] if resume else [steps]
    for out, done in zip(outputs, runs_steps):
        assert [_rows_packed(o) for o in out] == [done * batch // 2] * 2
    if resume:
        assert f"(step {steps // 2})" in outputs[1][0] and "resumed from" in outputs[1][0]


def test_two_processes_train_on_half_the_rows_each_like_one_process(tmp_path):
    """The fast variant: one device per process (weights sharded across the two: fsdp=2), 4 x 32 rows;
    resuming two processes is tested in test_multihost (its runs use data.shards=2 too)."""
    _check(tmp_path, 1, FAST, batch=4, resume=False)


@pytest.mark.slow  # three processes compile at once, then two again
def test_two_processes_of_four_devices_log_the_losses_of_one_process_of_eight_and_resume(tmp_path):
    eight = [f for f in FAST if not f.startswith(("--config.mesh", "--config.train.batch_size"))]
    _check(tmp_path, 4, eight + ["--config.train.batch_size=8", "--config.mesh.data=-1"], batch=8, resume=True)
