"""Where a stage's starting weights and tokenizer come from: scratch, hf:DIR, ckpt:DIR or its parent stage."""
from __future__ import annotations

import os

import jax
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model, load_hf_model
from medjax.checkpoint.params_io import load_params_model, tokenizer_dir
from medjax.data.tokenizer import has_tokenizer, load_tokenizer
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.models.registry import family_module
from medjax.parallel.mesh import place, state_shardings
from medjax.peft.config import PeftSettings
from medjax.specs import parse_spec, resolve_hf_path


def default_tokenizer_path() -> str:
    from medjax.assets import default_paths

    return default_paths()["tokenizer"]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def scratch_model(model_cfg, tokenizer, seed: int, mesh):
    """A randomly initialised LLaMA-style model of `model.preset`, created directly with its shardings."""
    cfg = ModelConfig(family="llama", vocab_size=_round_up(tokenizer.vocab_size, 64), dtype=model_cfg.dtype,
                      param_dtype=model_cfg.param_dtype, remat=model_cfg.remat, bos_token_id=tokenizer.bos_id,
                      eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id, **preset(model_cfg.preset))
    module = family_module(cfg.family)
    graphdef, abstract_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abstract_state, mesh)
    state = jax.jit(lambda: nnx.split(module.build(cfg, nnx.Rngs(seed)))[1], out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def initial_model(c, seed: int, mesh, parent_spec: str | None = None):
    """(model, tokenizer, origin) for a stage: `parent_spec` (a ckpt: of the previous stage) wins
    over `model.init`. The model's variables are placed on `mesh`, except for a QLoRA stage: there
    they stay host numpy arrays until the decoder weights are quantised (peft/quantized.py), so the
    full-precision model never has to fit on the accelerators."""
    m = c.model
    overrides = dict(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat)
    on_host = PeftSettings.from_config(c).method == "qlora"
    spec = parent_spec or m.init
    tok_path = m.tokenizer
    if spec == "scratch":
        tokenizer = load_tokenizer(tok_path or default_tokenizer_path())
        return scratch_model(m, tokenizer, seed, mesh), tokenizer, "scratch"
    s = parse_spec(spec)
    if s.kind == "hf":
        directory = resolve_hf_path(s.path)
        model = load_hf_model(directory, on_host=on_host, **overrides)
        tok_path = tok_path or (directory if has_tokenizer(directory) else None)
    elif s.kind == "ckpt":
        model, config_dir = load_params_model(s.path, on_host=on_host, **overrides)
        tok_path = tok_path or tokenizer_dir(config_dir)
    else:
        raise ValueError(f"config.model.init={spec!r}: expected scratch, hf:DIR or ckpt:DIR")
    if tok_path is None:
        raise FileNotFoundError(f"{spec}: has no tokenizer files; set config.model.tokenizer")
    tokenizer = load_tokenizer(tok_path)
    if on_host:  # train/stage.py places the variables after prepare_trainable
        return model, tokenizer, str(spec)
    graphdef, state = nnx.split(model)
    state = place(state, state_shardings(state, mesh))  # works when the mesh spans several hosts
    return nnx.merge(graphdef, state), tokenizer, str(spec)


def finished_stage_spec(stage_dir: str) -> str | None:
    """ckpt: spec of a stage directory that holds at least one checkpoint, else None."""
    ckpts = os.path.join(stage_dir, "checkpoints")
    if os.path.isdir(ckpts) and any(d.isdigit() for d in os.listdir(ckpts)):
        return "ckpt:" + stage_dir
    return None
