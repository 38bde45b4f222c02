"""A model's transformers tensors, copied off the device one layer at a time (for safetensors_shards).

A family's `export_params(params, cfg)` maps a host copy of all the parameters to HF tensors. Here it
runs once per layer instead: the stacked `layers` leaves sliced to that layer (the only device ->
host copy), every other leaf a zero-stride placeholder, and `cfg.num_layers = 1`; the layer-0 names
it returns are renamed with the layer prefixes of the family's weight table ("model.layers.{i}." ->
"model.layers.7."). One more call with the other leaves real gives the embeddings, head and final
norm. A first call on placeholders only gives every name and shape, so shard headers can be
written before any data.
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.safetensors_shards import TensorSpec
from medjax.models.registry import family_module

_TOP = "top"  # the group of tensors outside the layer stack


@jax.jit
def _layer_of(stacked, i):
    return jax.lax.dynamic_index_in_dim(stacked, i, 0, keepdims=True)


def _host_layer(leaf, i: int) -> np.ndarray:
    if isinstance(leaf, jax.Array):
        return np.asarray(_layer_of(leaf, i))  # one compile per leaf shape, not per layer
    return np.asarray(leaf[i:i + 1])


def _placeholder(leaf, shape=None) -> np.ndarray:
    return np.broadcast_to(np.zeros((), np.dtype(leaf.dtype)), leaf.shape if shape is None else shape)


class HFTensors:
    """`specs` (every tensor's name, shape and the export dtype) and `read(name)`, which copies the
    tensor's group (its layer, or the tensors outside the stack) to the host when first asked."""

    def __init__(self, model, dtype: np.dtype):
        cfg = model.config
        self._module = family_module(cfg.family)
        self._cfg = cfg.replace(num_layers=1)
        _, state = nnx.split(model)
        params = nnx.to_pure_dict(state)
        self._layers = params.pop("layers", {})
        self._top = params
        bad = [a.shape for a in jax.tree.leaves(self._layers) if not a.shape or a.shape[0] != cfg.num_layers]
        if bad:
            raise ValueError(f"HF export: layer stack leaves {bad} do not lead with num_layers={cfg.num_layers}")
        self._prefixes = sorted({name[:name.index("{i}")] for name, _, _ in self._module.weight_table(cfg)
                                 if "{i}" in name})
        top, layer0 = self._export(None)
        self.specs = [TensorSpec(n, a.shape, dtype) for n, a in top.items()]
        self._group = {n: _TOP for n in top}
        for i in range(cfg.num_layers):
            for n, a in layer0.items():
                self.specs.append(TensorSpec(self._rename(n, i), a.shape, dtype))
                self._group[self.specs[-1].name] = i
        self._current, self._cache = None, {}

    def read(self, name: str) -> np.ndarray:
        group = self._group[name]
        if group != self._current:
            self._cache = {}  # drop the previous group before copying the next one
            top, layer = self._export(group)
            self._cache = top if group == _TOP else {self._rename(n, group): a for n, a in layer.items()}
            self._current = group
        return self._cache.pop(name)  # the writer's copy is the last one

    def _export(self, group) -> tuple[dict, dict]:
        """(tensors outside the stack, layer-0 tensors) with `group` real and the rest placeholders."""
        top = jax.tree.map(np.asarray if group == _TOP else _placeholder, self._top)
        if isinstance(group, int):
            layers = jax.tree.map(lambda a: _host_layer(a, group), self._layers)
        else:
            layers = jax.tree.map(lambda a: _placeholder(a, (1, *a.shape[1:])), self._layers)
        out = self._module.export_params({**top, "layers": layers} if self._layers else top, self._cfg)
        in_layer = {n for n in out if any(n.startswith(p + "0.") for p in self._prefixes)}
        return ({n: a for n, a in out.items() if n not in in_layer}, {n: a for n, a in out.items() if n in in_layer})

    def _rename(self, name: str, i: int) -> str:
        prefix = next(p for p in self._prefixes if name.startswith(p + "0."))
        return f"{prefix}{i}.{name[len(prefix) + 2:]}"
