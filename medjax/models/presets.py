"""Shapes for models trained from scratch (`model.init=scratch`, `model.preset=NAME`).

Two kinds. SHAPES are LLaMA-style shapes whose vocabulary is the run's tokenizer's (rounded up to a
multiple of 64). PUBLISHED are real models, given as the shape fields of their published config.json
(read by the family's own `config_from_hf`, so the architecture - biases, GQA, 2D positions, tied
heads - is exactly what loading that checkpoint would build), with their real vocabularies.
"""
from __future__ import annotations

import dataclasses

from medjax.models.config import ModelConfig

SHAPES = {
    # the embedded default: trains CP + IFT on a 2-core CPU in minutes
    "tiny": dict(hidden_size=128, intermediate_size=352, num_layers=4, num_heads=4, num_kv_heads=2,
                 max_position_embeddings=1024, tie_embeddings=True),
    # for tests: compiles in seconds
    "test": dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 max_position_embeddings=512, tie_embeddings=True),
    # the PERFORMANCE.md workload: 57.7M parameters with the 32k LLaMA vocabulary
    "bench50m": dict(hidden_size=512, intermediate_size=1344, num_layers=8, num_heads=8, num_kv_heads=8,
                     max_position_embeddings=2048),
}

# scratch GLMs: transformers' GlmForCausalLM layout (q/k/v biases, half-rotary interleaved rope) at the
# `tiny` shape; the vocabulary is the run's tokenizer's, as for SHAPES
GLM_SHAPES = {
    "tiny-glm": dict(model_type="glm", hidden_size=128, intermediate_size=352, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024,
                     tie_word_embeddings=True),
}

_LLAMA2 = dict(model_type="llama", vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
               bos_token_id=1, eos_token_id=2)
_CHATGLM2 = dict(model_type="chatglm", add_qkv_bias=True, multi_query_attention=True, multi_query_group_num=2,
                 kv_channels=128, layernorm_epsilon=1e-5, tie_word_embeddings=False)
PUBLISHED = {
    # meta-llama/Llama-2-7b-hf, Llama-2-13b-hf, Meta-Llama-3-8B
    "llama2-7b": dict(_LLAMA2, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32),
    "llama2-13b": dict(_LLAMA2, hidden_size=5120, intermediate_size=13824, num_hidden_layers=40,
                       num_attention_heads=40, num_key_value_heads=40),
    "llama3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                      max_position_embeddings=8192, rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001),
    # THUDM/chatglm-6b (GLM v1: 2D rotary, GELU MLP, biases everywhere)
    "chatglm-6b": dict(model_type="chatglm", vocab_size=130528, hidden_size=4096, inner_hidden_size=16384,
                       num_layers=28, num_attention_heads=32, max_sequence_length=2048, layernorm_epsilon=1e-5,
                       position_encoding_2d=True, bos_token_id=130004, eos_token_id=130005,
                       mask_token_id=130000, gmask_token_id=130001, pad_token_id=3),
    # THUDM/glm-10b (GLM v1: learned position and block-position tables, tied head); its config.json
    # has no special ids: these are its GLMGPT2Tokenizer's, which follow the 50,257 BPE tokens
    "glm-10b": dict(model_type="glm", vocab_size=50304, hidden_size=4096, num_layers=48, num_attention_heads=64,
                    max_sequence_length=1024, block_position_encoding=True, relative_encoding=False,
                    attention_scale=1.0, sop_token_id=50257, eop_token_id=50258, mask_token_id=50260,
                    gmask_token_id=50263, smask_token_id=50264),
    # THUDM/chatglm3-6b and THUDM/glm-4-9b (the original ChatGLM layout: GQA with 2 groups, qkv bias)
    "chatglm3-6b": dict(_CHATGLM2, padded_vocab_size=65024, hidden_size=4096, ffn_hidden_size=13696,
                        num_layers=28, num_attention_heads=32, seq_length=8192, eos_token_id=2, pad_token_id=0),
    "glm4-9b": dict(_CHATGLM2, padded_vocab_size=151552, hidden_size=4096, ffn_hidden_size=13696, num_layers=40,
                    num_attention_heads=32, seq_length=8192, rope_ratio=500, eos_token_id=[151329, 151336, 151338],
                    pad_token_id=151329),
}
# the fields of a ModelConfig that are run settings, not shape: a preset never sets them
_SETTINGS = ("dtype", "param_dtype", "remat", "attention")


def preset_names() -> list[str]:
    return sorted(SHAPES) + sorted(GLM_SHAPES) + sorted(PUBLISHED)


def published_config(name: str) -> ModelConfig:
    """The ModelConfig a checkpoint of the real model `name` would load as."""
    from medjax.models.registry import module_for_model_type

    if name not in PUBLISHED:
        raise ValueError(f"config.model.preset={name!r}: known real-model presets are {sorted(PUBLISHED)}")
    hf = PUBLISHED[name]
    return module_for_model_type(hf["model_type"]).config_from_hf(dict(hf), source=f"preset {name}")


def scratch_config(name: str, tokenizer, **settings) -> ModelConfig:
    """The ModelConfig of a scratch model of preset `name` for `tokenizer`; `settings` are run settings
    (dtype, param_dtype, remat)."""
    unknown = set(settings) - set(_SETTINGS)
    if unknown:
        raise ValueError(f"scratch_config: {sorted(unknown)} are not run settings ({_SETTINGS})")
    if name in SHAPES:
        return ModelConfig(family="llama", vocab_size=-(-tokenizer.vocab_size // 64) * 64,
                           bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                           pad_token_id=tokenizer.pad_id, **SHAPES[name], **settings)
    if name in GLM_SHAPES:
        from medjax.models import glm

        hf = dict(GLM_SHAPES[name], vocab_size=-(-tokenizer.vocab_size // 64) * 64, bos_token_id=tokenizer.bos_id,
                  eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
        return dataclasses.replace(glm.config_from_hf(hf, source=f"preset {name}"), **settings)
    if name not in PUBLISHED:
        raise ValueError(f"config.model.preset={name!r}: known presets are {preset_names()}")
    cfg = published_config(name)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise ValueError(f"config.model.preset={name!r} has {cfg.vocab_size} vocabulary rows, fewer than the "
                         f"tokenizer's {tokenizer.vocab_size} tokens: use the model's own tokenizer")
    if cfg.family == "llama":  # no special ids in the shapes: the run's tokenizer decides them
        cfg = dataclasses.replace(cfg, bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                                  pad_token_id=tokenizer.pad_id)
    return dataclasses.replace(cfg, **settings)


_LLAMA_SHAPE = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                "rope_theta", "norm_eps", "tie_embeddings", "max_position_embeddings")


def preset(name: str) -> dict:
    """The LLaMA shape fields of `name` (ModelConfig keyword arguments, no vocabulary): a SHAPES entry,
    or a LLaMA-family real model. GLM real models differ in more than shape: use scratch_config."""
    if name in SHAPES:
        return dict(SHAPES[name])
    if name in PUBLISHED and published_config(name).family == "llama":
        cfg = published_config(name)
        return {key: getattr(cfg, key) for key in _LLAMA_SHAPE}
    if name in PUBLISHED:
        raise ValueError(f"preset {name!r} is a {published_config(name).family} model, not a LLaMA shape: "
                         "use presets.scratch_config / published_config")
    raise ValueError(f"config.model.preset={name!r}: known presets are {preset_names()}")
