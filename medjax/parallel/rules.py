"""The one table that maps logical axis names to mesh axes (DESIGN.md principle 2).

Parameters declare their logical axes as `axes` metadata on their nnx.Variable; activations name
theirs at `constrain(...)` calls. A logical name missing from the table is an error, never a
silent replicate.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import jax
from jax.sharding import NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or tuple of mesh axes, or None for replicated)
RULES: dict[str, str | tuple[str, ...] | None] = {
    # parameters
    "layers": None,
    "vocab": "tensor",
    "embed": "fsdp",
    "q_heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "norm": None,
    "lora_rank": None,
    "prompt": None,
    "quant_blocks": "fsdp",
    # activations
    "batch": ("data", "fsdp"),
    "seq": None,
    "act_embed": None,
    "act_mlp": "tensor",
    "act_vocab": "tensor",
    "head_dim": None,
    "cache_seq": None,
}

_active_mesh: contextvars.ContextVar = contextvars.ContextVar("medjax_mesh", default=None)


def logical_to_spec(axes, rules=None) -> PartitionSpec:
    rules = RULES if rules is None else rules
    mesh_axes = []
    for name in axes:
        if name is None:
            mesh_axes.append(None)
            continue
        if name not in rules:
            raise KeyError(f"logical axis {name!r} has no rule in medjax/parallel/rules.py RULES")
        mesh_axes.append(rules[name])
    return PartitionSpec(*mesh_axes)


@contextlib.contextmanager
def activation_sharding(mesh):
    """Within this context, `constrain` pins activations to `mesh` (a no-op outside it)."""
    token = _active_mesh.set(mesh)
    try:
        yield
    finally:
        _active_mesh.reset(token)


def with_activation_sharding(fn, mesh):
    """`fn` (a jitted step) called, and so traced, inside `activation_sharding(mesh)`."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with activation_sharding(mesh):
            return fn(*args, **kwargs)

    return call


def active_mesh():
    """The mesh of the enclosing activation_sharding, or None (kernels that need a shard_map read it)."""
    return _active_mesh.get()


def mesh_shards(logical: str, mesh=None) -> int:
    """How many ways `mesh` (default: the active one; none = 1) splits the logical axis."""
    mesh = _active_mesh.get() if mesh is None else mesh
    if mesh is None:
        return 1
    axes = RULES[logical]
    names = (axes,) if isinstance(axes, str) else tuple(axes or ())
    return math.prod(mesh.shape[a] for a in names)


def constrain(x, axes):
    mesh = _active_mesh.get()
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(axes)))
