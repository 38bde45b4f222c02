"""A transformers model directory <-> an nnx model (config, weights, tokenizer files)."""
from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.hf_io import TensorStore, read_config, write_json, write_safetensors
from medjax.models.config import ModelConfig
from medjax.models.registry import family_module, module_for_model_type


def abstract_model(cfg: ModelConfig):
    """The model's graph and parameter shapes, without allocating weights."""
    module = family_module(cfg.family)
    return nnx.eval_shape(lambda: module.build(cfg, nnx.Rngs(0)))


def model_from_params(cfg: ModelConfig, params: dict, on_host: bool = False):
    """Builds the model of `cfg` holding `params` (a nested dict shaped like its state). With on_host
    the variables keep host numpy arrays, so nothing reaches a device until the caller places it
    (QLoRA quantises the decoder weights first, see peft/quantized.py)."""
    graphdef, state = nnx.split(abstract_model(cfg))
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray if on_host else jax.numpy.asarray, params))
    return nnx.merge(graphdef, state)


def param_shapes(cfg: ModelConfig) -> dict:
    _, state = nnx.split(abstract_model(cfg))
    return jax.tree.map(lambda a: a.shape, nnx.to_pure_dict(state))


def config_from_hf_dir(directory: str) -> ModelConfig:
    hf = read_config(directory)
    source = os.path.join(directory, "config.json")
    if "model_type" not in hf:
        raise KeyError(f"{source}: config.json lacks required field 'model_type'")
    return module_for_model_type(hf["model_type"], source).config_from_hf(hf, source)


def load_hf_model(directory: str, on_host: bool = False, **overrides):
    """Reads config.json + safetensors of `directory`; overrides change e.g. dtype or remat; on_host:
    see model_from_params."""
    cfg = config_from_hf_dir(directory).replace(**overrides)
    module = family_module(cfg.family)
    store = TensorStore(directory)
    params = module.import_params(store, cfg, param_shapes(cfg), np.dtype(cfg.param_dtype), directory)
    return model_from_params(cfg, params, on_host)


def save_hf_model(model, directory: str, tokenizer=None, dtype: str | None = None) -> None:
    """Writes config.json, model.safetensors, generation_config.json and the tokenizer files."""
    cfg: ModelConfig = model.config
    module = family_module(cfg.family)
    os.makedirs(directory, exist_ok=True)
    _, state = nnx.split(model)
    params = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    tensors = module.export_params(params, cfg)
    out_dtype = np.dtype(dtype or cfg.param_dtype)
    tensors = {k: np.asarray(v, dtype=out_dtype) for k, v in tensors.items()}
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    hf = module.config_to_hf(cfg)
    hf["torch_dtype"] = str(out_dtype) if dtype else hf.get("torch_dtype", "float32")
    write_json(os.path.join(directory, "config.json"), hf)
    gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id}
    if cfg.pad_token_id is not None:
        gen["pad_token_id"] = cfg.pad_token_id
    write_json(os.path.join(directory, "generation_config.json"), gen)
    if tokenizer is not None:
        tokenizer.save(directory)
