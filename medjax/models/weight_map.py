"""Declarative HF <-> medjax weight tables.

A table lists (hf_name, our_path, kind). `{i}` in a name marks a per-layer weight; those are
stacked along our leading `layers` axis. Kinds: "linear" (HF stores [out, in]; we store [in, out]),
"copy" (same layout). Families with fused or permuted weights add their own steps around these.
"""
from __future__ import annotations

import numpy as np

from medjax.models.config import ModelConfig

LINEAR, COPY = "linear", "copy"


def _get_path(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _set_path(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _from_hf(arr: np.ndarray, kind: str) -> np.ndarray:
    return arr.T if kind == LINEAR else arr


def import_table(store, table, num_layers: int, shapes: dict, dtype, source: str) -> dict:
    """Reads every weight of `table` from `store` into a nested dict shaped like `shapes`."""
    params: dict = {}
    for hf_name, path, kind in table:
        expected = tuple(_get_path(shapes, path))
        if "{i}" in hf_name:
            layers = []
            for i in range(num_layers):
                name = hf_name.format(i=i)
                layers.append(_checked(store, name, kind, expected[1:], source))
            value = np.stack(layers)
        else:
            value = _checked(store, hf_name, kind, expected, source)
        _set_path(params, path, value.astype(dtype))
    return params


def _checked(store, name: str, kind: str, expected: tuple, source: str) -> np.ndarray:
    if name not in store:
        raise KeyError(f"{source}: missing weight {name!r}")
    arr = store.get(name)
    hf_shape = tuple(reversed(expected)) if kind == LINEAR else expected
    if tuple(arr.shape) != hf_shape:
        raise ValueError(f"{source}: weight {name!r} has shape {tuple(arr.shape)}, expected {hf_shape} "
                         "from config.json")
    return _from_hf(np.asarray(arr), kind)


def export_table(params: dict, table, num_layers: int) -> dict[str, np.ndarray]:
    out = {}
    for hf_name, path, kind in table:
        value = np.asarray(_get_path(params, path))
        if "{i}" in hf_name:
            for i in range(num_layers):
                out[hf_name.format(i=i)] = _from_hf(value[i], kind)
        else:
            out[hf_name] = _from_hf(value, kind)
    return out


def split_fused_rows(store, name_fmt: str, num_layers: int, sizes: tuple[int, ...], in_features: int, dtype,
                     source: str, layout: str) -> list[np.ndarray]:
    """Per-layer HF weights [sum(sizes), in] fused by rows (e.g. gate;up or q;k;v), split into stacked
    kernels [L, in, size] of ours, one per part. `layout` says in errors what config.json implies."""
    expected = (sum(sizes), in_features)
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for i in range(num_layers):
        name = name_fmt.format(i=i)
        if name not in store:
            raise KeyError(f"{source}: missing weight {name!r}")
        fused = np.asarray(store.get(name))
        if fused.shape != expected:
            raise ValueError(f"{source}: weight {name!r} has shape {fused.shape}, expected {expected} "
                             f"({layout}) from config.json")
        for stack, rows in zip(parts, np.split(fused, np.cumsum(sizes)[:-1], axis=0)):
            stack.append(rows.T)
    return [np.stack(stack).astype(dtype) for stack in parts]


def decoder_weight_rows(cfg: ModelConfig):
    """Weight-table rows shared by LLaMA-style transformers decoders: embeddings, norms, attention,
    down projection and the untied head (the gate/up layout differs per family)."""
    layer = "model.layers.{i}."
    table = [
        ("model.embed_tokens.weight", ("embed", "embedding"), COPY),
        ("model.norm.weight", ("final_norm", "scale"), COPY),
        (layer + "input_layernorm.weight", ("layers", "attn_norm", "scale"), COPY),
        (layer + "post_attention_layernorm.weight", ("layers", "mlp_norm", "scale"), COPY),
        (layer + "mlp.down_proj.weight", ("layers", "mlp", "down", "kernel"), LINEAR),
    ]
    for ours in ("q", "k", "v", "o"):
        table.append((layer + f"self_attn.{ours}_proj.weight", ("layers", "attn", ours, "kernel"), LINEAR))
        if cfg.attention_bias and ours != "o":
            table.append((layer + f"self_attn.{ours}_proj.bias", ("layers", "attn", ours, "bias"), COPY))
    if not cfg.tie_embeddings:
        table.append(("lm_head.weight", ("lm_head", "kernel"), LINEAR))
    return table
