"""GLM (GlmForCausalLM, GLM-4-9B) and GLM-4 (Glm4ForCausalLM, GLM-4-0414) as transformers defines them.

Both reuse the shared decoder: partial rotary (the first `partial_rotary_factor` of each head) on
interleaved (even, odd) pairs, bias on q/k/v but not o, SwiGLU, grouped-query attention with an
explicit head_dim; glm4 adds a norm after attention and one after the MLP (`post_norms`).
transformers fuses gate and up into `mlp.gate_up_proj` ([gate; up] along the output axis); our tree
keeps them apart so LoRA roles stay q, k, v, o, gate, up, down: split on import, fuse on export.

This module also answers for `model_type` "chatglm" (THUDM's original ChatGLM/GLM-4 code) and for
the GLM-10B "glm" config: `glm_layout` tells them apart and hands them to chatglm_original.py or
glm_v1.py.
"""
from __future__ import annotations

import numpy as np
from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.hf_config_fields import ConfigFields, decoder_hf_fields, refuse_quantized
from medjax.models.weight_map import COPY, decoder_weight_rows, export_table, import_table, split_fused_rows

MODEL_TYPES = ("glm", "glm4", "chatglm")
_ARCHITECTURES = {"glm": "GlmForCausalLM", "glm4": "Glm4ForCausalLM"}
GATE_UP = "model.layers.{i}.mlp.gate_up_proj.weight"
EOS_IDS = (151329, 151336, 151338)  # GlmConfig / Glm4Config's default


def glm_layout(hf: dict, source: str) -> str:
    """"transformers" (GlmForCausalLM / Glm4ForCausalLM), "chatglm_original" (ChatGLM2/3, GLM-4-9B
    as THUDM published them) or "glm_v1" (ChatGLM-6B, GLM-10B)."""
    model_type = hf.get("model_type")
    if model_type == "glm4":
        return "transformers"
    if model_type == "glm":
        # GLM-10B's own config also says "glm": it has num_layers and learned block positions.
        if "num_hidden_layers" not in hf and ("num_layers" in hf or "block_position_encoding" in hf):
            return "glm_v1"
        return "transformers"
    if model_type == "chatglm":
        if "position_encoding_2d" in hf or "inner_hidden_size" in hf:
            return "glm_v1"
        if "multi_query_group_num" in hf or "padded_vocab_size" in hf or "kv_channels" in hf:
            return "chatglm_original"
        raise ValueError(f"{source}: unknown GLM variant: model_type 'chatglm' with neither ChatGLM-6B fields "
                         "(position_encoding_2d, inner_hidden_size) nor ChatGLM2/3/GLM-4 fields "
                         "(multi_query_group_num, padded_vocab_size, kv_channels)")
    raise ValueError(f"{source}: unknown GLM variant: model_type {model_type!r}; expected one of {MODEL_TYPES}")


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    layout = glm_layout(hf, source)
    if layout == "glm_v1":
        from medjax.models import glm_v1

        return glm_v1.config_from_hf(hf, source)
    if layout == "chatglm_original":
        from medjax.models import chatglm_original

        return chatglm_original.config_from_hf(hf, source)
    # transformers' GlmForCausalLM / Glm4ForCausalLM read only these fields (no mlp_bias: their MLP has
    # none); defaults are GlmConfig / Glm4Config's (a GLM-4-9B shape)
    family = hf["model_type"]
    f = ConfigFields(hf, source, f"transformers {_ARCHITECTURES[family]}")
    refuse_quantized(f)
    f.refuse("hidden_act", ("silu",), f"{family} uses silu")
    heads = f.integer("num_attention_heads")
    kv_heads = f.integer("num_key_value_heads", 2, null=heads)
    f.divides("num_attention_heads", heads, "num_key_value_heads", kv_heads)
    max_positions = f.integer("max_position_embeddings", 131072)
    theta, scaling, partial = f.rope(default_theta=10000.0, default_partial=0.5, max_positions=max_positions)
    return ModelConfig(
        family=family,
        vocab_size=f.integer("vocab_size"),
        hidden_size=f.integer("hidden_size"),
        intermediate_size=f.integer("intermediate_size"),
        num_layers=f.integer("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=f.integer("head_dim", 128, null=None),  # null: hidden_size // num_attention_heads
        rope_theta=theta,
        rope_scaling=scaling,
        partial_rotary_factor=partial,
        rope_interleaved=True,
        norm_eps=f.number("rms_norm_eps", 1.5625e-07),
        tie_embeddings=f.flag("tie_word_embeddings", False),
        attention_bias=f.flag("attention_bias", True),
        post_norms=family == "glm4",
        max_position_embeddings=max_positions,
        bos_token_id=f.token_ids("bos_token_id"),
        eos_token_id=f.token_ids("eos_token_id", list(EOS_IDS), null=list(EOS_IDS)),  # a null too, as GlmConfig
        pad_token_id=f.token_ids("pad_token_id", 151329),
        extra={"model_type": family},
    )


def config_to_hf(cfg: ModelConfig) -> dict:
    rope = {"rope_theta": cfg.rope_theta, "rope_type": "default", **(cfg.rope_scaling or {}),
            "partial_rotary_factor": cfg.partial_rotary_factor}
    return {"architectures": [_ARCHITECTURES[cfg.family]], "model_type": cfg.family, **decoder_hf_fields(cfg),
            "rope_parameters": rope}


def weight_table(cfg: ModelConfig):
    """Every transformers weight except the fused gate_up_proj (see split/fuse below)."""
    table = decoder_weight_rows(cfg)
    if cfg.post_norms:
        layer = "model.layers.{i}."
        table += [(layer + "post_self_attn_layernorm.weight", ("layers", "post_attn_norm", "scale"), COPY),
                  (layer + "post_mlp_layernorm.weight", ("layers", "post_mlp_norm", "scale"), COPY)]
    return table


def split_gate_up(store, name_fmt: str, cfg: ModelConfig, dtype, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Stacked gate and up kernels [L, D, F] from fused [2F, D] weights (gate rows first)."""
    f = cfg.intermediate_size
    gate, up = split_fused_rows(store, name_fmt, cfg.num_layers, (f, f), cfg.hidden_size, dtype, source,
                                "2 x intermediate_size, hidden_size")
    return gate, up


def fuse_gate_up(params: dict, name_fmt: str, num_layers: int) -> dict[str, np.ndarray]:
    mlp = params["layers"]["mlp"]
    gate, up = np.asarray(mlp["gate"]["kernel"]), np.asarray(mlp["up"]["kernel"])
    return {name_fmt.format(i=i): np.concatenate([gate[i].T, up[i].T], axis=0) for i in range(num_layers)}


def import_params(store, cfg: ModelConfig, shapes: dict, dtype, source: str) -> dict:
    from medjax.models import chatglm_original

    if chatglm_original.is_original_layout(store):
        return chatglm_original.import_params(store, cfg, shapes, dtype, source)
    params = import_table(store, weight_table(cfg), cfg.num_layers, shapes, dtype, source)
    gate, up = split_gate_up(store, GATE_UP, cfg, dtype, source)
    params["layers"]["mlp"]["gate"] = {"kernel": gate}
    params["layers"]["mlp"]["up"] = {"kernel": up}
    return params


def export_params(params: dict, cfg: ModelConfig) -> dict:
    """Always writes transformers' layout (also for models imported from THUDM's original one)."""
    return {**export_table(params, weight_table(cfg), cfg.num_layers), **fuse_gate_up(params, GATE_UP, cfg.num_layers)}


def build(cfg: ModelConfig, rngs: nnx.Rngs) -> DecoderLM:
    return DecoderLM(cfg, rngs=rngs)
