"""Multi-host start-up: jax.distributed.initialize only when asked, or when the environment is a
multi-process job (a SLURM step with several tasks, a TPU pod whose workers are listed); and the few
collectives the trainer runs across processes (host_copy, sum_over_processes, gather_json).

Environment (the launchers in launch/ set these):
  MEDJAX_DISTRIBUTED           auto (default) | 1 (always initialise) | 0 (never)
  MEDJAX_COORDINATOR_ADDRESS   host:port of process 0
  MEDJAX_NUM_PROCESSES         number of processes
  MEDJAX_PROCESS_ID            this process's index
  MEDJAX_LOCAL_DEVICE_IDS      comma-separated local device ids this process drives
Whatever is not given is left to JAX's own cluster detection (GCE TPU metadata, SLURM variables).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MODE = "MEDJAX_DISTRIBUTED"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# env variable -> (jax.distributed.initialize argument, parser)
_EXPLICIT = {
    "MEDJAX_COORDINATOR_ADDRESS": ("coordinator_address", str),
    "MEDJAX_NUM_PROCESSES": ("num_processes", int),
    "MEDJAX_PROCESS_ID": ("process_id", int),
    "MEDJAX_LOCAL_DEVICE_IDS": ("local_device_ids", lambda v: [int(i) for i in v.split(",") if i.strip()]),
}


@dataclasses.dataclass(frozen=True)
class StartUp:
    reason: str  # why this process joins a multi-process job (printed at start-up)
    kwargs: dict  # explicit jax.distributed.initialize arguments; the rest JAX detects


def explicit_arguments(env: Mapping[str, str]) -> dict:
    kwargs = {}
    for var, (arg, parse) in _EXPLICIT.items():
        if env.get(var, "").strip():
            try:
                kwargs[arg] = parse(env[var].strip())
            except ValueError:
                raise ValueError(f"{var}={env[var]!r}: not a valid {arg}") from None
    return kwargs


def _count(env: Mapping[str, str], var: str) -> int:
    try:
        return int(env.get(var, "0") or 0)
    except ValueError:
        raise ValueError(f"{var}={env[var]!r}: expected an integer") from None


def detect(env: Mapping[str, str] | None = None) -> StartUp | None:
    """How this process should start, or None for a single-process run."""
    env = os.environ if env is None else env
    mode = env.get(MODE, "auto").strip().lower()
    if mode in _OFF:
        return None
    if mode not in _ON + ("auto",):
        raise ValueError(f"{MODE}={env[MODE]!r}: expected auto, 1 or 0")
    kwargs = explicit_arguments(env)
    if mode in _ON:
        return StartUp(f"{MODE}={env[MODE]}", kwargs)
    if "coordinator_address" in kwargs:
        return StartUp("MEDJAX_COORDINATOR_ADDRESS is set", kwargs)
    tasks = _count(env, "SLURM_STEP_NUM_TASKS") or (_count(env, "SLURM_NTASKS") if "SLURM_PROCID" in env else 0)
    if tasks > 1:
        return StartUp(f"SLURM step with {tasks} tasks", kwargs)
    workers = env.get("TPU_WORKER_HOSTNAMES") or env.get("TPU_PROCESS_ADDRESSES") or ""
    if len([w for w in workers.split(",") if w.strip()]) > 1:
        return StartUp(f"TPU pod with {len(workers.split(','))} workers", kwargs)
    return None


def maybe_initialize(env: Mapping[str, str] | None = None) -> bool:
    """Initialises jax.distributed when `detect` says so; returns whether it did."""
    start = detect(env)
    if start is None:
        return False
    jax.distributed.initialize(**start.kwargs)
    if jax.process_index() == 0:
        print(f"jax.distributed: {jax.process_count()} processes, {jax.device_count()} devices "
              f"({start.reason})", flush=True)
    return True


def host_copy(tree):
    """Every array of `tree` as a whole numpy array on every process (all processes must call this),
    e.g. before process 0 exports weights that are sharded across hosts."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


@functools.cache
def _sum_over_devices(length: int):
    """(sharding of one row per device, jitted sum replicated everywhere), built once per length."""
    mesh = Mesh(np.asarray(jax.devices()), ("devices",))
    return NamedSharding(mesh, PartitionSpec("devices")), jax.jit(lambda x: jnp.sum(x, axis=0), out_shardings=(
        NamedSharding(mesh, PartitionSpec())))


def sum_over_processes(values) -> jax.Array:
    """The sum over processes of each process's float32 `values`, as a device array the same on every
    process (all must call this, with the same length). Not read back: np.asarray(...) waits for it."""
    values = np.asarray(values, np.float32)
    sharding, sum_over_devices = _sum_over_devices(len(values))
    local = np.zeros((jax.local_device_count(), len(values)), np.float32)
    local[0] = values  # one row per device; the process's values on its first
    return sum_over_devices(jax.make_array_from_process_local_data(sharding, local))


def gather_json(value) -> list:
    """Every process's JSON-serialisable `value`, in process order, on every process (all must call
    this; it waits for all of them, so only at steps that synchronise anyway, e.g. a save)."""
    if jax.process_count() == 1:
        return [value]
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(value, default=str).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.asarray([len(data)], np.int32))
    padded = np.zeros(int(np.max(sizes)), np.uint8)
    padded[:len(data)] = data
    everyone = multihost_utils.process_allgather(padded)
    return [json.loads(row[:int(n)].tobytes()) for row, n in zip(everyone, np.ravel(sizes))]
