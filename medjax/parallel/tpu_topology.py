"""A `--topology` name -> the devices a plan compiles for, without owning them.

`v5e:4x4`, `v6e:2x2` (2D slices), `v4:2x2x1`, `v5p:2x2x1` (3D slices): compile-only TPU devices from
libtpu (`pip install -e '.[tpu]'`); this machine needs no TPU. v4 and v5p count one device per chip
(megacore), as JAX runs them. `cpu:N`: N fake host devices (XLA's
--xla_force_host_platform_device_count), for tests and machines without libtpu.

jax is imported inside the functions: `environment_for` must run before jax initialises.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

from medjax.parallel.chips import CHIPS, Chip

INSTALL_HINT = "pip install -e '.[tpu]'"
_THREE_D = ("v4", "v5p")  # slices named AxBxC; the others AxB
_HOST_BOUNDS = (2, 2, 1)  # chips per host of every generation here (a smaller slice is one partial host)
# libtpu 0.0.42.1 aborts compiling glm-10b's full-parameter step over fsdp 4 (rotated_pincer_fusion_emitter.cc:1904,
# "Check failed: s_count.has_value()") unless these two collective optimisations are off
DEFAULT_LIBTPU_INIT_ARGS = ("--xla_tpu_enable_all_reduce_scatter_fusion=false "
                            "--xla_tpu_enable_data_parallel_all_reduce_opt=false")


class TpuNotInstalled(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str
    kind: str  # "cpu" or a chip name (chips.CHIPS)
    dims: tuple[int, ...]

    @property
    def num_devices(self) -> int:
        return math.prod(self.dims)

    @property
    def chip(self) -> Chip | None:
        return CHIPS.get(self.kind)


def parse_topology(name: str) -> Topology:
    kind, sep, rest = str(name).partition(":")
    known = f"cpu:N, {', '.join(f'{k}:' + ('AxBxC' if k in _THREE_D else 'AxB') for k in CHIPS)}"
    if not sep or (kind != "cpu" and kind not in CHIPS):
        raise ValueError(f"--topology={name!r}: expected one of {known} (e.g. v5e:4x4)")
    try:
        dims = tuple(int(d) for d in rest.split("x"))
    except ValueError:
        raise ValueError(f"--topology={name!r}: {rest!r} is not a shape like 4x4 (expected {known})") from None
    want = 1 if kind == "cpu" else 3 if kind in _THREE_D else 2
    if len(dims) != want or min(dims) < 1:
        raise ValueError(f"--topology={name!r}: {kind} takes {want} positive dimension(s) (expected {known})")
    return Topology(str(name), kind, dims)


def environment_for(topology: Topology) -> dict[str, str]:
    """Environment variables to set before jax initialises: N host devices for cpu:N; for a TPU slice
    the CPU backend only (the slice's devices come from libtpu's compile-only topology; letting jax
    look for a local TPU prints errors and gains nothing), and no libtpu lock file: compiling touches
    no chip, so several plans may run at once (else the second fails with "libtpu_lockfile"); and, unless
    the user set LIBTPU_INIT_ARGS, DEFAULT_LIBTPU_INIT_ARGS."""
    env = {"JAX_PLATFORMS": "cpu"}
    if topology.kind != "cpu":
        env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
        if "LIBTPU_INIT_ARGS" not in os.environ:
            env["LIBTPU_INIT_ARGS"] = DEFAULT_LIBTPU_INIT_ARGS
    else:
        flags = os.environ.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={topology.num_devices}".strip()
    return env


def libtpu_available() -> bool:
    return importlib.util.find_spec("libtpu") is not None


def topology_devices(topology: Topology) -> list:
    """The topology's devices, in order: real CPU devices, or compile-only TPU devices."""
    import jax

    if topology.kind == "cpu":
        devices = jax.devices("cpu")
        if len(devices) < topology.num_devices:
            raise ValueError(f"--topology={topology.name}: jax has {len(devices)} CPU device(s); set "
                             f"XLA_FLAGS=--xla_force_host_platform_device_count={topology.num_devices} before jax "
                             "initialises (python -m medjax.plan does)")
        return devices[: topology.num_devices]
    if not libtpu_available():
        raise TpuNotInstalled(f"--topology={topology.name}: compiling for a TPU slice needs libtpu, which is not "
                              f"installed; install it with: {INSTALL_HINT} (or use --topology=cpu:N)")
    from jax.experimental.topologies import get_topology_desc

    dims3 = topology.dims + (1,) * (3 - len(topology.dims))
    desc = get_topology_desc(topology_name=f"{topology.kind}:{'x'.join(map(str, topology.dims))}", platform="tpu",
                             chip_config_name="megacore" if topology.kind in _THREE_D else "default",
                             chips_per_host_bounds=tuple(min(d, h) for d, h in zip(dims3, _HOST_BOUNDS)))
    return list(desc.devices)
