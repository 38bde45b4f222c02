"""Multi-host start-up: when jax.distributed starts (flags in the environment, SLURM, TPU pods), and a
real two-process run on one machine (localhost coordinator, 4 CPU devices each) that logs the same
losses as one process with 8 devices, with process 0 alone writing metrics and the HF export."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from medjax.parallel.distributed import detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--config=configs/cp.py", "--config.model.preset=test", "--config.train.seq_len=64",
         "--config.train.batch_size=8", "--config.train.steps=2", "--config.train.log_every=1",
         "--config.train.eval_every=0", "--config.train.eval_batches=0", "--config.train.warmup_steps=2",
         "--config.checkpoint.async_save=False"]


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


def _start(workdir, devices: int, extra_env: dict, *flags):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
           **extra_env}
    return subprocess.Popen([sys.executable, "-m", "medjax.main", f"--workdir={workdir}", *FLAGS, *flags],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _losses(workdir):
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if "loss" in r]


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


@pytest.mark.slow  # three processes compile at once: about 2.5 minutes on 2 cores
def test_two_processes_log_the_losses_of_one_process_with_eight_devices(tmp_path):
    port = _free_port()
    multi = str(tmp_path / "two_processes")
    procs = [_start(multi, 4, {"MEDJAX_COORDINATOR_ADDRESS": f"localhost:{port}", "MEDJAX_NUM_PROCESSES": "2",
                               "MEDJAX_PROCESS_ID": str(i)}) for i in range(2)]
    single = str(tmp_path / "one_process")
    procs.append(_start(single, 8, {}, "--config.export_hf=False"))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    assert "jax.distributed: 2 processes, 8 devices" in outputs[0]
    assert "step 2/2" in outputs[0] and "step 2/2" not in outputs[1]  # process 0 alone logs
    multi_losses, single_losses = _losses(multi), _losses(single)
    assert len(multi_losses) == 2
    np.testing.assert_allclose(multi_losses, single_losses, atol=1e-5, rtol=0)
    assert os.path.exists(os.path.join(multi, "cp", "hf", "config.json"))  # gathered, written by process 0
