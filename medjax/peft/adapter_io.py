"""LoRA adapters <-> a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) that
the `peft` library loads onto the transformers model of the same base.

PEFT names an adapter weight `base_model.model.<HF module>.lora_A.weight` ([r, in]) and
`...lora_B.weight` ([out, r]); the HF module of each of our layers comes from the family's weight
table (the same table that maps the base weights), so any family with plain Linear weights works.
"""
from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np

from medjax.checkpoint.hf_io import SafetensorsFile, write_json, write_safetensors
from medjax.models.registry import family_module
from medjax.models.weight_map import LINEAR
from medjax.peft.config import PeftSettings
from medjax.peft.lora import lora_modules
from medjax.peft.setup import apply_lora

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."


def hf_modules(cfg) -> dict[tuple, str]:
    """Our Linear module path -> HF module name ('{i}' marks the layer index) for family `cfg.family`."""
    module = family_module(cfg.family)
    table = getattr(module, "weight_table", None)
    if table is None:
        raise ValueError(f"PEFT adapters: family {cfg.family!r} has no weight table to name its layers")
    return {tuple(path[:-1]): name[: -len(".weight")] for name, path, kind in table(cfg)
            if kind == LINEAR and path[-1] == "kernel" and name.endswith(".weight")}


def _hf_name_of(names: dict, path: tuple, cfg) -> str:
    if path not in names:
        raise ValueError(f"PEFT export: layer {'/'.join(map(str, path))} has no plain HF Linear in the "
                         f"{cfg.family} weight table (fused in the HF layout?)")
    return names[path]


def export_adapter(model, settings: PeftSettings, directory: str, dtype: str | None = None) -> None:
    """Writes the LoRA adapters of `model` as a PEFT directory."""
    cfg = model.config
    names = hf_modules(cfg)
    out_dtype = np.dtype(dtype or cfg.param_dtype)
    tensors, targets = {}, set()
    for path, m in lora_modules(model):
        hf = _hf_name_of(names, path, cfg)
        targets.add(hf.rsplit(".", 1)[-1])
        a, b = np.asarray(m.lora_a[...], np.float32), np.asarray(m.lora_b[...], np.float32)
        per_layer = [(hf.format(i=i), a[i], b[i]) for i in range(a.shape[0])] if "{i}" in hf else [(hf, a, b)]
        for name, a_i, b_i in per_layer:
            tensors[f"{PREFIX}{name}.lora_A.weight"] = a_i.T.astype(out_dtype)  # [r, in]
            tensors[f"{PREFIX}{name}.lora_B.weight"] = b_i.T.astype(out_dtype)  # [out, r]
    if not tensors:
        raise ValueError("PEFT export: the model has no LoRA adapters")
    os.makedirs(directory, exist_ok=True)
    write_safetensors(os.path.join(directory, ADAPTER_WEIGHTS), tensors)
    write_json(os.path.join(directory, ADAPTER_CONFIG), {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": settings.rank, "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout, "use_rslora": settings.rslora, "target_modules": sorted(targets),
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
        "init_lora_weights": True, "base_model_name_or_path": None})


def read_adapter_config(directory: str) -> dict:
    path = os.path.join(directory, ADAPTER_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"peft:{directory}: missing {ADAPTER_CONFIG}")
    with open(path) as f:
        ac = json.load(f)

    def need(cond, key, msg):
        if not cond:
            raise ValueError(f"{path}: {key}={ac.get(key)!r}: {msg}")

    need(ac.get("peft_type") == "LORA", "peft_type", "only LORA adapters are supported")
    need(isinstance(ac.get("target_modules"), list), "target_modules", "expected a list of module names")
    need(not ac.get("fan_in_fan_out"), "fan_in_fan_out", "not supported")
    need(ac.get("bias", "none") == "none", "bias", "only bias='none' is supported")
    need(not ac.get("modules_to_save"), "modules_to_save", "not supported")
    for key in ("rank_pattern", "alpha_pattern"):
        need(not ac.get(key), key, "per-layer ranks/alphas are not supported")
    need(not ac.get("use_dora"), "use_dora", "DoRA is not supported")
    return ac


def import_adapter(base_model, directory: str, seed: int = 0):
    """(model with the adapters of PEFT `directory` on `base_model`, their PeftSettings)."""
    ac = read_adapter_config(directory)
    cfg = base_model.config
    names = hf_modules(cfg)
    leaves = set(ac["target_modules"])
    paths = [p for p, hf in names.items() if hf.rsplit(".", 1)[-1] in leaves]
    missing = sorted(leaves - {names[p].rsplit(".", 1)[-1] for p in paths})
    if missing:
        raise ValueError(f"{os.path.join(directory, ADAPTER_CONFIG)}: target_modules {missing} are not layers of "
                         f"this {cfg.family} model (known: {sorted({hf.rsplit('.', 1)[-1] for hf in names.values()})})")
    settings = PeftSettings(method="lora", rank=int(ac["r"]), alpha=float(ac["lora_alpha"]),
                            dropout=float(ac.get("lora_dropout", 0.0)), rslora=bool(ac.get("use_rslora", False)),
                            targets=",".join("/".join(map(str, p)) for p in sorted(paths)))
    model = apply_lora(base_model, settings, seed)
    weights = os.path.join(directory, ADAPTER_WEIGHTS)
    if not os.path.exists(weights):
        raise FileNotFoundError(f"peft:{directory}: missing {ADAPTER_WEIGHTS}")
    store = SafetensorsFile(weights)
    for path, m in lora_modules(model):
        hf = names[path]
        layer_names = [hf.format(i=i) for i in range(cfg.num_layers)] if "{i}" in hf else [hf]
        a = [_read(store, f"{PREFIX}{n}.lora_A.weight", m.lora_a.shape[-2:][::-1], directory) for n in layer_names]
        b = [_read(store, f"{PREFIX}{n}.lora_B.weight", m.lora_b.shape[-2:][::-1], directory) for n in layer_names]
        stack = np.stack if "{i}" in hf else (lambda xs: xs[0])
        m.lora_a.set_value(jnp.asarray(stack([x.T for x in a]), m.lora_a.dtype))
        m.lora_b.set_value(jnp.asarray(stack([x.T for x in b]), m.lora_b.dtype))
    return model, settings


def _read(store, name: str, shape: tuple, directory: str) -> np.ndarray:
    if name not in store.keys():
        raise KeyError(f"peft:{directory}: {ADAPTER_WEIGHTS} lacks {name!r}")
    arr = np.asarray(store.get(name), np.float32)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"peft:{directory}: {name} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    return arr
