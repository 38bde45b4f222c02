"""The device mesh (data, fsdp, tensor) and the shardings derived from logical axes."""
from __future__ import annotations

import functools
import math

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from medjax.parallel.rules import MESH_AXES, logical_to_spec


def mesh_shape(data: int, fsdp: int, tensor: int, num_devices: int) -> tuple[int, int, int]:
    """Resolves at most one -1 axis; the product must equal the device count."""
    sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
    free = [k for k, v in sizes.items() if v == -1]
    if len(free) > 1:
        raise ValueError(f"mesh: only one axis may be -1, got {free}")
    for k, v in sizes.items():
        if v == 0 or v < -1:
            raise ValueError(f"mesh.{k}={v}: expected a positive size or -1")
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(f"mesh: {num_devices} devices cannot be split with "
                             f"{', '.join(f'mesh.{k}={v}' for k, v in sizes.items())}")
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes.values()) != num_devices:
        raise ValueError(f"mesh: data x fsdp x tensor = {sizes['data']} x {sizes['fsdp']} x {sizes['tensor']} = "
                         f"{math.prod(sizes.values())}, but there are {num_devices} devices "
                         "(set one of mesh.data / mesh.fsdp / mesh.tensor to -1 to take the rest)")
    return sizes["data"], sizes["fsdp"], sizes["tensor"]


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(data, fsdp, tensor, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def variable_axes(path: tuple, var: nnx.Variable) -> tuple:
    """Logical axes of a variable; stacked layer parameters gain the leading `layers` axis."""
    axes = tuple(var.get_metadata().get("axes") or ())
    ndim = np.ndim(var.get_value()) if hasattr(var, "get_value") else np.ndim(var.value)
    if len(axes) == ndim - 1 and path and str(path[0]) == "layers":
        axes = ("layers",) + axes
    if len(axes) != ndim:
        name = "/".join(str(p) for p in path)
        raise ValueError(f"parameter {name}: {ndim}-d but declares logical axes {axes}")
    return axes


def _path_keys(path) -> tuple:
    return tuple(getattr(p, "key", getattr(p, "name", p)) for p in path)


def state_shardings(state, mesh: Mesh):
    """A tree like `state` whose Variables hold NamedShardings derived from their logical axes.

    An axis whose size does not divide the parameter dimension is an error naming both.
    """
    def one(path, var):
        keys = _path_keys(path)
        axes = variable_axes(keys, var)
        spec = logical_to_spec(axes)
        shape = np.shape(var.get_value())
        for dim, (size, mesh_axes) in enumerate(zip(shape, spec)):
            names = () if mesh_axes is None else (mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,))
            ways = math.prod(mesh.shape[a] for a in names)
            if size % ways:
                raise ValueError(f"parameter {'/'.join(map(str, keys))}: dimension {dim} ({axes[dim]}, size {size}) "
                                 f"is not divisible by mesh axis {'x'.join(names)} of size {ways}")
        return var.replace(NamedSharding(mesh, spec))

    return jax.tree_util.tree_map_with_path(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def place(tree, shardings):
    """jax.device_put that also works on several hosts, where a sharding spans devices this process
    cannot address: every process holds the whole value (numpy, or a local device), or the array is
    already global and is resharded by a compiled copy."""
    def one(x, sharding):
        if getattr(x, "sharding", None) == sharding:
            return x
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.jit(lambda a: a, out_shardings=sharding)(x)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        value = np.asarray(x)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(one, tree, shardings)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(("batch", "seq")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shardings_of(tree):
    return jax.tree.map(lambda x: x.sharding, tree)


def optimizer_shardings(optimizer: optax.GradientTransformation, params, mesh: Mesh):
    """Shardings for `optimizer.init(params)`: every parameter-shaped leaf (Adam's mu and nu) takes
    its parameter's sharding, everything else (step counts) is replicated.

    jit(init) alone would replicate mu/nu: zeros_like does not inherit a sharding while tracing.
    """
    abstract = jax.eval_shape(optimizer.init, params)
    return optax.tree_utils.tree_map_params(optimizer, lambda _, p: p.sharding, abstract, params,
                                            transform_non_params=lambda _: replicated(mesh))


def per_device_bytes(tree) -> dict:
    """Bytes each device holds for the arrays of `tree`, read from their shards (not assumed)."""
    held = {}
    for x in jax.tree.leaves(tree):
        for shard in x.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    return held


def _batch_ways(mesh: Mesh, batch_size: int, what: str) -> None:
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size % ways:
        raise ValueError(f"{what} has {batch_size} rows, which cannot be split over mesh.data x mesh.fsdp = {ways} "
                         "devices (train.batch_size must be a multiple)")


@functools.lru_cache(maxsize=16)
def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, ...]:
    """The rows of a [batch_size, ...] batch that this process's devices hold, in increasing order
    (every row on one process; the same rows on processes that replicate each other)."""
    _batch_ways(mesh, batch_size, "the batch")
    rows = set()
    for index in batch_sharding(mesh).addressable_devices_indices_map((batch_size, 1)).values():
        rows.update(range(batch_size)[index[0]])
    return tuple(sorted(rows))


def put_process_batch(local: dict, mesh: Mesh, batch_size: int) -> dict:
    """This process's rows of a global batch (`process_rows`, in order) -> global arrays of
    `batch_size` rows sharded over the batch axes; each process gives only its own rows."""
    sharding, rows = batch_sharding(mesh), process_rows(mesh, batch_size)
    out = {}
    for key, value in local.items():
        value = np.asarray(value)
        if value.shape[0] != len(rows):
            raise ValueError(f"batch[{key!r}] has {value.shape[0]} rows; this process holds {len(rows)} of the "
                             f"{batch_size} rows of each batch")
        out[key] = jax.make_array_from_process_local_data(sharding, value, (batch_size,) + value.shape[1:])
    return out


def put_batch(batch: dict, mesh: Mesh) -> dict:
    """The global host batch [B, ...] -> global arrays sharded over the batch axes (evaluation batches,
    which every process builds whole); each process copies only the rows that its own devices hold.
    """
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        _batch_ways(mesh, value.shape[0], f"batch[{key!r}]")
        out[key] = jax.make_array_from_callback(value.shape, sharding, lambda index, v=value: v[index])
    return out
