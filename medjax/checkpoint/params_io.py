"""Parameter-only medjax checkpoints ("ckpt:DIR") and how a ckpt: path is resolved.

A params directory holds `model_config.json`, `params/` (Orbax) and, when known, `tokenizer/`.
A trainer stage directory holds `model_config.json`, `tokenizer/` and `checkpoints/<step>/params`;
a run directory holds stage directories and `summary.json` (the last stage listed wins).
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from medjax.checkpoint.atomic_dir import replacing_dir
from medjax.checkpoint.hf_model import abstract_model, model_from_params
from medjax.models.config import ModelConfig

MODEL_CONFIG = "model_config.json"
PARAMS = "params"
TOKENIZER = "tokenizer"


def save_params(directory: str, model, tokenizer=None, peft=None) -> None:
    """Writes `directory` as a whole (atomic_dir.py): params/, model_config.json, tokenizer/ and, with
    `peft` (PeftSettings), the peft_config.json that lets ckpt: loading rebuild the adapter graph."""
    with replacing_dir(directory) as tmp:
        _, state = nnx.split(model)
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(os.path.join(tmp, PARAMS), nnx.to_pure_dict(state), force=True)
        ckptr.wait_until_finished()
        with open(os.path.join(tmp, MODEL_CONFIG), "w") as f:
            f.write(model.config.to_json())
        if tokenizer is not None:
            tokenizer.save(os.path.join(tmp, TOKENIZER))
        if peft is not None:
            peft.save(tmp)


def read_model_config(directory: str) -> ModelConfig:
    path = os.path.join(directory, MODEL_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing (not a medjax checkpoint directory)")
    with open(path) as f:
        return ModelConfig.from_dict(json.load(f))


def restore_params(params_dir: str, abstract_params: dict) -> dict:
    ckptr = ocp.StandardCheckpointer()
    return ckptr.restore(os.path.abspath(params_dir), abstract_params)


def restore_params_on_host(params_dir: str, abstract_params: dict) -> dict:
    """Like restore_params, as numpy arrays that no device holds yet."""
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), abstract_params)
    return ocp.PyTreeCheckpointer().restore(os.path.abspath(params_dir),
                                            args=ocp.args.PyTreeRestore(restore_args=as_numpy))


def abstract_params_of(model_abstract) -> dict:
    """Restore target on this process's first device: the checkpoint may come from any mesh or device
    count (Orbax refuses the saved topology when it differs); callers re-shard afterwards."""
    _, state = nnx.split(model_abstract)
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=here), nnx.to_pure_dict(state))


def resolve_ckpt(path: str) -> tuple[str, str]:
    """(directory with model_config.json, params directory) for a ckpt: path."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"ckpt:{path}: no such directory")
    if os.path.isdir(os.path.join(path, PARAMS)) and os.path.exists(os.path.join(path, MODEL_CONFIG)):
        return path, os.path.join(path, PARAMS)
    summary = os.path.join(path, "summary.json")
    if os.path.exists(summary):
        with open(summary) as f:
            stages = json.load(f).get("stages", {})
        for stage in reversed(list(stages)):
            if os.path.isdir(os.path.join(path, stage, "checkpoints")):
                return resolve_ckpt(os.path.join(path, stage))
    ckpts = os.path.join(path, "checkpoints")
    if os.path.isdir(ckpts):
        steps = sorted((int(d) for d in os.listdir(ckpts) if d.isdigit()), reverse=True)
        for step in steps:
            params = os.path.join(ckpts, str(step), PARAMS)
            if os.path.isdir(params):
                return path, params
        raise FileNotFoundError(f"ckpt:{path}: {ckpts} holds no finished checkpoint")
    raise FileNotFoundError(
        f"ckpt:{path}: expected {MODEL_CONFIG} + {PARAMS}/, a stage directory with checkpoints/, "
        f"or a run directory with summary.json; found {sorted(os.listdir(path))}")


def load_params_model(path: str, on_host: bool = False, **overrides):
    """The model stored at a ckpt: path (params only), with optional config overrides; on_host: see
    hf_model.model_from_params."""
    config_dir, params_dir = resolve_ckpt(path)
    cfg = read_model_config(config_dir).replace(**overrides)
    abstract = _abstract_with_peft(cfg, config_dir)
    restore = restore_params_on_host if on_host else restore_params
    if abstract is None:
        params = restore(params_dir, abstract_params_of(abstract_model(cfg)))
        return model_from_params(cfg, params, on_host), config_dir
    params = restore(params_dir, abstract_params_of(abstract))
    graphdef, state = nnx.split(abstract)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray if on_host else jax.numpy.asarray, params))
    return nnx.merge(graphdef, state), config_dir


def _abstract_with_peft(cfg: ModelConfig, config_dir: str):
    """The adapter graph (LoRA, QLoRA, soft prompt) a PEFT stage saved, from its peft_config.json; else None."""
    from medjax.peft.config import PeftSettings  # peft builds on the models, not the other way round
    from medjax.peft.setup import abstract_peft_model

    settings = PeftSettings.load(config_dir)
    if settings is None or settings.method == "none":
        return None
    return abstract_peft_model(cfg, settings)


def tokenizer_dir(config_dir: str) -> str | None:
    d = os.path.join(config_dir, TOKENIZER)
    return d if os.path.isdir(d) else None
