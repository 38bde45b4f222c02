"""A transformers model directory <-> an nnx model (config, weights, tokenizer files)."""
from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.atomic_dir import replacing_dir
from medjax.checkpoint.export_stream import HFTensors
from medjax.checkpoint.hf_io import TensorStore, read_config, write_json
from medjax.checkpoint.safetensors_shards import DEFAULT_MAX_SHARD_SIZE, export_dtype, write_shards
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


def save_hf_model(model, directory: str, tokenizer=None, dtype: str | None = None,
                  max_shard_size: int = DEFAULT_MAX_SHARD_SIZE) -> None:
    """Writes config.json, the weights (model.safetensors, or shards of at most `max_shard_size` bytes
    + index, streamed off the device one layer at a time), generation_config.json and the tokenizer
    files. The directory is replaced as a whole: nothing of a previous export survives, and a failed
    export leaves the previous one as it was (atomic_dir.py)."""
    cfg: ModelConfig = model.config
    out_dtype = export_dtype(dtype) or np.dtype(cfg.param_dtype)
    module = family_module(cfg.family)
    tensors = HFTensors(model, out_dtype)
    hf = module.config_to_hf(cfg)
    hf["torch_dtype"] = str(out_dtype) if dtype else hf.get("torch_dtype", "float32")
    gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id}
    if cfg.pad_token_id is not None:
        gen["pad_token_id"] = cfg.pad_token_id
    with replacing_dir(directory) as tmp:
        write_shards(tmp, tensors.specs, tensors.read, max_shard_size)
        write_json(os.path.join(tmp, "config.json"), hf)
        write_json(os.path.join(tmp, "generation_config.json"), gen)
        if tokenizer is not None:
            tokenizer.save(tmp)
