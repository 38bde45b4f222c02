"""LoRA adapters <-> a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) that
the `peft` library loads onto the transformers model of the same base.

PEFT names an adapter weight `base_model.model.<HF module>.lora_A.weight` ([r, in]) and
`...lora_B.weight` ([out, r]); on the token embedding `...lora_embedding_A` ([r, vocab]) and
`...lora_embedding_B` ([hidden, r]). The HF module of each of our layers comes from the family's
weight table (the same table that maps the base weights), so any family with plain Linear weights
works. A family whose HF layout fuses several of our layers into one Linear (GLM v1's
query_key_value) lists them in `fused_linears(cfg)`: their adapters are written as one block-diagonal
adapter on the fused layer (adapter_fused.py), with `rank_pattern` / `alpha_pattern` giving it rank
n*r at the same scale. Importing splits such an adapter back when it is block-diagonal; a general one
(trained on the fused layer) has no exact split and is merged into the base weights with merge=True
(`--merge`), or is an error.
"""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.checkpoint.atomic_dir import replacing_dir
from medjax.checkpoint.hf_io import SafetensorsFile, read_json_object, read_torch_bin, write_json, write_safetensors
from medjax.checkpoint.safetensors_shards import export_dtype
from medjax.models.registry import family_module
from medjax.models.weight_map import LINEAR
from medjax.peft.adapter_fused import fuse_adapter, fused_alpha, split_adapter, split_delta
from medjax.peft.config import PeftSettings
from medjax.peft.lora import lora_modules, lora_scale
from medjax.peft.lora_embedding import LoRAEmbed
from medjax.peft.setup import apply_lora

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_WEIGHTS_BIN = "adapter_model.bin"
PREFIX = "base_model.model."
LINEAR_KEYS = ("lora_A.weight", "lora_B.weight")
EMBED_KEYS = ("lora_embedding_A", "lora_embedding_B")
TOKEN_TABLE = ("embed",)  # the token embedding's module path in every family


def hf_modules(cfg) -> dict[tuple, str]:
    """Our Linear / token-embedding module path -> HF module name ('{i}' marks the layer index)."""
    module = family_module(cfg.family)
    table = getattr(module, "weight_table", None)
    if table is None:
        raise ValueError(f"PEFT adapters: family {cfg.family!r} has no weight table to name its layers")
    return {tuple(path[:-1]): name[: -len(".weight")] for name, path, kind in table(cfg)
            if name.endswith(".weight") and ((kind == LINEAR and path[-1] == "kernel")
                                             or tuple(path) == TOKEN_TABLE + ("embedding",))}


def fused_modules(cfg) -> dict:
    """HF module name -> (our module paths, fuse, split) for the family's fused Linear layers."""
    fused = getattr(family_module(cfg.family), "fused_linears", None)
    return fused(cfg) if fused else {}


def _leaf(hf: str) -> str:
    return hf.rsplit(".", 1)[-1]


def _layer_names(hf: str, num_layers: int) -> list[str]:
    return [hf.format(i=i) for i in range(num_layers)] if "{i}" in hf else [hf]


def _hf_name_of(names: dict, path: tuple, cfg) -> str:
    if path not in names:
        raise ValueError(f"PEFT export: layer {'/'.join(map(str, path))} has no HF Linear or embedding in the "
                         f"{cfg.family} weight table")
    return names[path]


def _stacked(hf: str, a):
    """The per-layer arrays of a (possibly scanned) adapter weight."""
    return list(a) if "{i}" in hf else [a]


def export_adapter(model, settings: PeftSettings, directory: str, dtype: str | None = None) -> None:
    """Writes the LoRA adapters of `model` as a PEFT directory."""
    cfg = model.config
    names, fused = hf_modules(cfg), fused_modules(cfg)
    adapters = dict(lora_modules(model))
    in_fused = {p for parts, _, _ in fused.values() for p in parts}
    out_dtype = export_dtype(dtype) or np.dtype(cfg.param_dtype)
    tensors, targets, rank_pattern, alpha_pattern = {}, set(), {}, {}

    def put(name, keys, a_T, b_T):
        tensors[f"{PREFIX}{name}.{keys[0]}"] = a_T.astype(out_dtype)  # [r, in]
        tensors[f"{PREFIX}{name}.{keys[1]}"] = b_T.astype(out_dtype)  # [out, r]

    for path, m in adapters.items():
        if path in in_fused:
            continue
        hf = _hf_name_of(names, path, cfg)
        targets.add(_leaf(hf))
        keys = EMBED_KEYS if isinstance(m, LoRAEmbed) else LINEAR_KEYS
        a, b = np.asarray(m.lora_a[...], np.float32), np.asarray(m.lora_b[...], np.float32)
        for name, a_i, b_i in zip(_layer_names(hf, cfg.num_layers), _stacked(hf, a), _stacked(hf, b)):
            put(name, keys, a_i.T, b_i.T)
    for hf, (parts, fuse, _) in fused.items():
        present = [adapters[p] for p in parts if p in adapters]
        if not present:
            continue
        first = present[0]
        # a part without an adapter gets zero blocks; the fused parts share their shapes (q, k, v)
        a = [np.asarray(adapters[p].lora_a[...], np.float32) if p in adapters else
             np.zeros(first.lora_a.shape, np.float32) for p in parts]
        b = [np.asarray(adapters[p].lora_b[...], np.float32) if p in adapters else
             np.zeros(first.lora_b.shape, np.float32) for p in parts]
        leaf = _leaf(hf)
        targets.add(leaf)
        rank_pattern[leaf] = len(parts) * first.rank
        alpha_pattern[leaf] = fused_alpha(first.alpha, len(parts), first.rslora)
        for i, name in enumerate(_layer_names(hf, cfg.num_layers)):
            a_i = [x[i] if "{i}" in hf else x for x in a]
            b_i = [x[i] if "{i}" in hf else x for x in b]
            put(name, LINEAR_KEYS, *fuse_adapter([x.T for x in a_i], [x.T for x in b_i], fuse))
    if not tensors:
        raise ValueError("PEFT export: the model has no LoRA adapters")
    with replacing_dir(directory) as tmp:  # the whole directory or nothing (checkpoint/atomic_dir.py)
        write_safetensors(os.path.join(tmp, ADAPTER_WEIGHTS), tensors)
        write_json(os.path.join(tmp, ADAPTER_CONFIG), {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": settings.rank, "lora_alpha": settings.alpha,
            "lora_dropout": settings.dropout, "use_rslora": settings.rslora, "target_modules": sorted(targets),
            "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern,
            "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
            "init_lora_weights": True, "base_model_name_or_path": None})


def open_adapter_config(directory: str):
    """(path, contents, need) of a PEFT directory's adapter_config.json; need(cond, key, msg) raises an
    error naming the file, the key and its value."""
    path = os.path.join(directory, ADAPTER_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"peft:{directory}: missing {ADAPTER_CONFIG}")
    ac = read_json_object(path)

    def need(cond, key, msg):
        if not cond:
            raise ValueError(f"{path}: {key}={ac.get(key)!r}: {msg}")

    return path, ac, need


def read_adapter_config(directory: str, pattern_keys=()) -> dict:
    """adapter_config.json, checked; rank_pattern / alpha_pattern may name only `pattern_keys`."""
    path, ac, need = open_adapter_config(directory)
    need(ac.get("peft_type") == "LORA", "peft_type", "only LORA adapters are supported")
    need(isinstance(ac.get("target_modules"), list), "target_modules", "expected a list of module names")
    need(not ac.get("fan_in_fan_out"), "fan_in_fan_out", "not supported")
    need(ac.get("bias", "none") == "none", "bias", "only bias='none' is supported")
    need(not ac.get("modules_to_save"), "modules_to_save", "not supported")
    for key in ("rank_pattern", "alpha_pattern"):
        need(set(ac.get(key) or {}) <= set(pattern_keys), key,
             f"per-layer ranks/alphas are supported only for fused layers ({sorted(pattern_keys) or 'none here'})")
    need(not ac.get("use_dora"), "use_dora", "DoRA is not supported")
    return ac


def _split_fused(store, directory, model, ac, hf, parts, split, merge) -> tuple[dict, float]:
    """({part path: (A [L?, in, r], B [L?, r, out])}, scale) for a block-diagonal fused adapter; a
    general one is merged into `model`'s part kernels when `merge` (returning no parts), else an error."""
    cfg, leaf = model.config, _leaf(hf)
    rank = int((ac.get("rank_pattern") or {}).get(leaf, ac["r"]))
    alpha = float((ac.get("alpha_pattern") or {}).get(leaf, ac["lora_alpha"]))
    scale = lora_scale(alpha, rank, bool(ac.get("use_rslora", False)))
    shapes = [_module_kernel(model, p).shape for p in parts]
    fan_in, fan_out = shapes[0][-2], sum(s[-1] for s in shapes)
    names = _layer_names(hf, cfg.num_layers)
    layers = [(_read(store, f"{PREFIX}{n}.{LINEAR_KEYS[0]}", (rank, fan_in), directory),
               _read(store, f"{PREFIX}{n}.{LINEAR_KEYS[1]}", (fan_out, rank), directory)) for n in names]
    blocks = [split_adapter(a, b, len(parts), split) for a, b in layers]
    if all(bl is not None for bl in blocks):
        stack = np.stack if "{i}" in hf else (lambda xs: xs[0])
        out = {}
        for j, p in enumerate(parts):
            a = stack([bl[j][0].T for bl in blocks])
            b = stack([bl[j][1].T for bl in blocks])
            if np.any(a) or np.any(b):  # an all-zero block is a part that had no adapter
                out[p] = (a, b)
        return out, scale
    if not merge:
        bad = names[next(i for i, bl in enumerate(blocks) if bl is None)]
        raise ValueError(f"peft:{directory}: {PREFIX}{bad}.lora_B.weight: this rank-{rank} adapter on the fused "
                         f"{leaf!r} is not one block per {'/'.join(p[-1] for p in parts)} (it was trained on the "
                         "fused layer), so no separate LoRA adapters reproduce it exactly; convert it with --merge "
                         "(--dst=hf:DIR or ckpt:DIR) to merge it into the weights")
    for i, (a, b) in enumerate(layers):
        deltas = split_delta(a, b, scale, split)  # [n, out, in]
        for j, p in enumerate(parts):
            kernel = _module_kernel(model, p)
            value = np.array(kernel[...], np.float32)
            if "{i}" in hf:
                value[i] += deltas[j].T
            else:
                value += deltas[j].T
            kernel.set_value(jnp.asarray(value, kernel.dtype))
    return {}, scale


def _module_kernel(model, path: tuple) -> nnx.Variable:
    module = model
    for key in path:
        module = getattr(module, key)
    return module.kernel


def import_adapter(base_model, directory: str, seed: int = 0, merge: bool = False):
    """(model with the adapters of PEFT `directory` on `base_model`, their PeftSettings). With merge, an
    adapter that has no exact LoRA form here (a general one on a fused layer) is merged into the base
    weights instead of raising; the caller is about to merge everything anyway."""
    cfg = base_model.config
    names, fused = hf_modules(cfg), fused_modules(cfg)
    fused_by_leaf = {_leaf(hf): hf for hf in fused}
    ac = read_adapter_config(directory, pattern_keys=fused_by_leaf)
    leaves = set(ac["target_modules"])
    plain = sorted(p for p, hf in names.items() if _leaf(hf) in leaves)
    known = {_leaf(hf) for hf in names.values()} | set(fused_by_leaf)
    missing = sorted(leaves - known)
    if missing:
        raise ValueError(f"{os.path.join(directory, ADAPTER_CONFIG)}: target_modules {missing} are not layers of "
                         f"this {cfg.family} model (known: {sorted(known)})")
    store = adapter_weights(directory)
    rank, alpha, rslora = int(ac["r"]), float(ac["lora_alpha"]), bool(ac.get("use_rslora", False))

    split_parts = {}
    for leaf in sorted(leaves & set(fused_by_leaf)):
        hf = fused_by_leaf[leaf]
        parts, _, split = fused[hf]
        found, scale = _split_fused(store, directory, base_model, ac, hf, parts, split, merge)
        part_rank = next(iter(found.values()))[0].shape[-1] if found else None
        if found and (plain or split_parts) and part_rank != rank:  # one PeftSettings: one rank for all
            raise ValueError(f"{os.path.join(directory, ADAPTER_CONFIG)}: rank_pattern[{leaf!r}] gives its parts "
                             f"rank {part_rank}, but the other target_modules have r={rank}; convert with --merge")
        if found and not (plain or split_parts):  # the settings take the fused layer's rank and scale
            rank, alpha = part_rank, scale * (np.sqrt(part_rank) if rslora else part_rank)
        split_parts.update({p: (a, b, scale) for p, (a, b) in found.items()})

    paths = plain + sorted(split_parts)
    if not paths:  # everything was merged into the base
        return base_model, PeftSettings()
    settings = PeftSettings(method="lora", rank=rank, alpha=float(alpha), dropout=float(ac.get("lora_dropout", 0.0)),
                            rslora=rslora, targets=",".join("/".join(map(str, p)) for p in paths))
    model = apply_lora(base_model, settings, seed)
    ours = lora_scale(settings.alpha, settings.rank, settings.rslora)
    for path, m in lora_modules(model):
        if path in split_parts:
            a, b, scale = split_parts[path]
            b = b if scale == ours else b * (scale / ours)  # the fused scale, carried by B
        else:
            hf = names[path]
            keys = EMBED_KEYS if isinstance(m, LoRAEmbed) else LINEAR_KEYS
            stack = np.stack if "{i}" in hf else (lambda xs: xs[0])
            layer_names = _layer_names(hf, cfg.num_layers)
            a = stack([_read(store, f"{PREFIX}{n}.{keys[0]}", m.lora_a.shape[-2:][::-1], directory).T
                       for n in layer_names])
            b = stack([_read(store, f"{PREFIX}{n}.{keys[1]}", m.lora_b.shape[-2:][::-1], directory).T
                       for n in layer_names])
        m.lora_a.set_value(jnp.asarray(a, m.lora_a.dtype))
        m.lora_b.set_value(jnp.asarray(b, m.lora_b.dtype))
    return model, settings


def adapter_weights(directory: str):
    """adapter_model.safetensors, or the pickled adapter_model.bin older adapters (e.g. ChatGLM-6B's) ship."""
    weights = os.path.join(directory, ADAPTER_WEIGHTS)
    if os.path.exists(weights):
        return SafetensorsFile(weights)
    if os.path.exists(os.path.join(directory, ADAPTER_WEIGHTS_BIN)):
        return read_torch_bin(os.path.join(directory, ADAPTER_WEIGHTS_BIN))
    raise FileNotFoundError(f"peft:{directory}: missing {ADAPTER_WEIGHTS} (or {ADAPTER_WEIGHTS_BIN})")


def _read(store, name: str, shape: tuple, directory: str) -> np.ndarray:
    if name not in store.keys():
        raise KeyError(f"peft:{directory}: the adapter weights lack {name!r}")
    arr = np.asarray(store.get(name), np.float32)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"peft:{directory}: {name} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    return arr
