"""Multi-host start-up: when jax.distributed starts (flags in the environment, SLURM, TPU pods), and
real two-process runs on one machine (localhost coordinator): they log the same losses as one process
with as many devices, process 0 alone writes metrics and the HF export, and SIGTERM to one process
stops both at the same step with one checkpoint that a rerun resumes from."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from medjax.parallel.distributed import detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--config=configs/cp.py", "--config.model.preset=test", "--config.train.seq_len=64",
         "--config.train.batch_size=8", "--config.train.steps=2", "--config.train.log_every=1",
         "--config.train.eval_every=0", "--config.train.eval_batches=0", "--config.train.warmup_steps=2",
         "--config.checkpoint.async_save=False", "--config.data.shards=2"]  # one process packs as two would
# the fast runs: one CPU device per process, params sharded across the two processes (fsdp=2); a
# constant learning rate from step 1 (the second step's loss shows the first update, and runs of any
# length compile the same programs, which the persistent compilation cache then shares)
FAST = ["--config=configs/cp.py", "--config.model.preset=test", "--config.train.seq_len=32",
        "--config.train.batch_size=4", "--config.train.log_every=1", "--config.train.eval_every=0",
        "--config.train.eval_batches=0", "--config.train.warmup_steps=0", "--config.train.schedule=constant",
        "--config.checkpoint.async_save=False", "--config.mesh.data=1", "--config.mesh.fsdp=2",
        "--config.data.shards=2"]


def test_single_process_by_default_and_when_switched_off():
    assert detect({}) is None
    assert detect({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    assert detect({"TPU_WORKER_HOSTNAMES": "t1k-w-0"}) is None
    assert detect({"MEDJAX_DISTRIBUTED": "0", "SLURM_STEP_NUM_TASKS": "8"}) is None


def test_asked_for_with_explicit_coordinator_and_ids():
    start = detect({"MEDJAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "MEDJAX_NUM_PROCESSES": "4",
                    "MEDJAX_PROCESS_ID": "2", "MEDJAX_LOCAL_DEVICE_IDS": "0,1"})
    assert start.kwargs == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 2,
                            "local_device_ids": [0, 1]}
    assert detect({"MEDJAX_DISTRIBUTED": "1"}).kwargs == {}  # JAX detects the cluster (TPU metadata, ...)


def test_slurm_steps_and_tpu_pods_are_detected():
    assert "SLURM step with 16 tasks" in detect({"SLURM_STEP_NUM_TASKS": "16"}).reason
    assert "SLURM" in detect({"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}).reason
    assert "TPU pod with 4 workers" in detect({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}).reason


def test_bad_values_name_the_variable():
    with pytest.raises(ValueError, match="MEDJAX_PROCESS_ID='one'"):
        detect({"MEDJAX_DISTRIBUTED": "1", "MEDJAX_PROCESS_ID": "one"})
    with pytest.raises(ValueError, match="MEDJAX_DISTRIBUTED='maybe'"):
        detect({"MEDJAX_DISTRIBUTED": "maybe"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(workdir, devices: int, extra_env: dict, *flags, base=FLAGS):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
           **extra_env}
    return subprocess.Popen([sys.executable, "-m", "medjax.main", f"--workdir={workdir}", *base, *flags],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _two_processes(workdir, devices_each: int, *flags, base=FLAGS):
    port = _free_port()
    return [_start(workdir, devices_each, {"MEDJAX_COORDINATOR_ADDRESS": f"localhost:{port}",
                                           "MEDJAX_NUM_PROCESSES": "2", "MEDJAX_PROCESS_ID": str(i)},
                   *flags, base=base) for i in range(2)]


def _finish(procs, timeout=600) -> list[str]:
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    except subprocess.TimeoutExpired:  # e.g. processes stuck in a collective: never leave them running
        for p in procs:
            p.kill()
        raise
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    return outputs


PLACE_ACROSS_HOSTS = """
import sys, jax, numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from medjax.parallel.mesh import make_mesh, place
local = jax.device_put(np.arange(16.0), jax.local_devices()[0])  # e.g. weights read from a checkpoint
on8 = place({"w": local, "b": np.ones(8)}, {"w": NamedSharding(make_mesh(1, 8, 1), P("fsdp")),
                                            "b": NamedSharding(make_mesh(1, 8, 1), P())})
mesh = make_mesh(2, 2, 2)
moved = place(on8, {"w": NamedSharding(mesh, P(("data", "tensor"))), "b": NamedSharding(mesh, P())})
whole = multihost_utils.process_allgather(moved["w"], tiled=True)
print("RESULT", moved["w"].sharding.spec, np.array_equal(whole, np.arange(16.0)), float(moved["b"].sum()))
"""


def test_place_moves_host_values_and_global_arrays_onto_meshes_spanning_two_processes():
    address = f"localhost:{_free_port()}"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-c", PLACE_ACROSS_HOSTS, address, str(i)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for p in procs:
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 0, out[-3000:]
        assert "RESULT P(('data', 'tensor'),) True 8.0" in out


def _wait_for_logged_steps(workdir, count: int, procs, timeout=300) -> None:
    metrics = os.path.join(workdir, "cp", "metrics.jsonl")
    deadline = time.time() + timeout
    while not (os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= count):
        if any(p.poll() is not None for p in procs) or time.time() > deadline:
            for p in procs:
                p.kill()
            raise AssertionError(f"fewer than {count} steps logged:\n" + "\n".join(p.stdout.read()[-3000:]
                                                                                  for p in procs))
        time.sleep(0.05)


def _losses_by_step(workdir) -> dict:
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


@pytest.fixture(scope="module")
def preempted(tmp_path_factory):
    """Two processes (one device each) train a long run; after 3 logged steps process 1 alone gets
    SIGTERM; then the same two processes rerun to 2 steps past the stop, with the HF export. Beside
    them, one process with two devices trains 12 steps of the same run (the constant learning rate
    makes a step's loss independent of the run's length)."""
    multi, single = str(tmp_path_factory.mktemp("two_processes")), str(tmp_path_factory.mktemp("one_process"))
    procs = _two_processes(multi, 1, "--config.train.steps=1000", "--config.checkpoint.every=1000",
                           "--config.export_hf=False", base=FAST)
    reference = _start(single, 2, {}, "--config.train.steps=12", "--config.export_hf=False", base=FAST)
    try:
        _wait_for_logged_steps(multi, 3, procs)
    except AssertionError:
        reference.kill()
        raise
    procs[1].send_signal(signal.SIGTERM)  # process 1 only; process 0 (which logs) never sees a signal
    stopped = _finish(procs + [reference], timeout=240)[:2]
    step = int(re.search(r"checkpoints/(\d+) written after SIGTERM", stopped[0]).group(1))
    checkpoints = sorted(d for d in os.listdir(os.path.join(multi, "cp", "checkpoints")) if d.isdigit())
    rerun = _finish(_two_processes(multi, 1, f"--config.train.steps={step + 2}", "--config.checkpoint.every=1000",
                                   base=FAST))
    return {"multi": multi, "single": single, "step": step, "stopped": stopped, "checkpoints": checkpoints,
            "rerun": rerun}


def test_two_processes_log_the_losses_of_one_process_with_two_devices(preempted):
    """The fast variant of the slow test below: one device per process, the weights sharded across
    the processes (so gradients, checkpoints and the HF export cross them), steps of 4x32 tokens."""
    assert "jax.distributed: 2 processes, 2 devices" in preempted["stopped"][0]
    assert "step 1/1000" in preempted["stopped"][0] and "step 1/1000" not in preempted["stopped"][1]  # 0 logs
    multi, single = _losses_by_step(preempted["multi"]), _losses_by_step(preempted["single"])
    both = sorted(set(multi) & set(single))
    assert len(both) >= 3  # and past the stop too when the stop came before step 11
    np.testing.assert_allclose([multi[s] for s in both], [single[s] for s in both], atol=1e-5, rtol=0)
    assert os.path.exists(os.path.join(preempted["multi"], "cp", "hf", "config.json"))  # gathered, written by 0


def test_sigterm_to_one_process_stops_both_at_the_same_step_and_a_rerun_resumes(preempted):
    """Saving is collective: if only the signalled process saved, the two would deadlock or write
    mismatched checkpoints. Both must stop at one agreed step, exit 0 and leave one checkpoint."""
    stopped, step = preempted["stopped"], preempted["step"]
    assert "SIGTERM received" in stopped[1] and "SIGTERM received" not in stopped[0]
    assert all(f"checkpoints/{step} written after SIGTERM" in out for out in stopped) and 3 <= step < 1000
    assert preempted["checkpoints"] == [str(step)]
    ckpt = os.path.join(preempted["multi"], "cp", "checkpoints", str(step))
    assert f"resumed from {ckpt} (step {step})" in preempted["rerun"][0]
    # steps 1..stop, then the two after it: nothing lost or repeated
    assert sorted(_losses_by_step(preempted["multi"])) == list(range(1, step + 3))


@pytest.mark.slow  # three processes compile at once: about 2.5 minutes on 2 cores
def test_two_processes_log_the_losses_of_one_process_with_eight_devices(tmp_path):
    multi = str(tmp_path / "two_processes")
    procs = _two_processes(multi, 4)
    single = str(tmp_path / "one_process")
    procs.append(_start(single, 8, {}, "--config.export_hf=False"))
    outputs = _finish(procs)
    assert "jax.distributed: 2 processes, 8 devices" in outputs[0]
    assert "step 2/2" in outputs[0] and "step 2/2" not in outputs[1]  # process 0 alone logs
    multi_losses, single_losses = _losses_by_step(multi), _losses_by_step(single)
    assert sorted(multi_losses) == [1, 2]
    np.testing.assert_allclose(list(multi_losses.values()), list(single_losses.values()), atol=1e-5, rtol=0)
    assert os.path.exists(os.path.join(multi, "cp", "hf", "config.json"))  # gathered, written by process 0
