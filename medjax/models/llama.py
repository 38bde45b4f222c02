"""LLaMA 1/2/3: the shared decoder plus its transformers mapping (models/mistral.py reuses it)."""
from __future__ import annotations

from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.hf_config_fields import ConfigFields, refuse_quantized
from medjax.models.weight_map import COPY, LINEAR, export_table, import_table

MODEL_TYPES = ("llama",)


def rope_to_hf(cfg: ModelConfig) -> dict:
    params = {"rope_theta": cfg.rope_theta, "rope_type": "default", **(cfg.rope_scaling or {})}
    return {"rope_parameters": params, "rope_theta": cfg.rope_theta}


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    """Fields transformers' LlamaForCausalLM reads are implemented or refused; it reads no others
    (a sliding_window there changes nothing in transformers either: models/mistral.py reads one)."""
    f = ConfigFields(hf, source, "LLaMA")
    refuse_quantized(f)
    f.refuse("mlp_bias", (False,), "LLaMA's MLP here has no bias")
    f.refuse("hidden_act", ("silu",), "LLaMA uses silu")
    hidden, heads = f.integer("hidden_size"), f.integer("num_attention_heads")
    f.divides("hidden_size", hidden, "num_attention_heads", heads)  # transformers requires it too
    kv_heads = f.integer("num_key_value_heads", heads, null=heads)
    f.divides("num_attention_heads", heads, "num_key_value_heads", kv_heads)
    max_positions = f.integer("max_position_embeddings", 4096)
    # LLaMA rotates whole heads
    theta, scaling, _ = f.rope(default_theta=10000.0, default_partial=1.0, max_positions=max_positions,
                               partial_supported=(1.0,))
    return ModelConfig(
        family="llama",
        vocab_size=f.integer("vocab_size"),
        hidden_size=hidden,
        intermediate_size=f.integer("intermediate_size"),
        num_layers=f.integer("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=f.integer("head_dim", None, null=None),
        rope_theta=theta,
        rope_scaling=scaling,
        norm_eps=f.number("rms_norm_eps", 1e-6),
        tie_embeddings=f.flag("tie_word_embeddings", False),
        attention_bias=f.flag("attention_bias", False),
        max_position_embeddings=max_positions,
        bos_token_id=f.token_ids("bos_token_id"),
        eos_token_id=f.token_ids("eos_token_id"),
        pad_token_id=f.token_ids("pad_token_id"),
        extra={"model_type": hf.get("model_type", "llama")},
    )


def decoder_hf_fields(cfg: ModelConfig) -> dict:
    """config.json fields every LLaMA-style transformers decoder (LLaMA, GLM, GLM-4) shares."""
    return {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": cfg.attention_bias,
        "max_position_embeddings": cfg.max_position_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": cfg.param_dtype,
    }


def config_to_hf(cfg: ModelConfig) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **decoder_hf_fields(cfg),
            **rope_to_hf(cfg), "mlp_bias": False}


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


def weight_table(cfg: ModelConfig):
    layer = "model.layers.{i}."
    return decoder_weight_rows(cfg) + [
        (layer + f"mlp.{ours}_proj.weight", ("layers", "mlp", ours, "kernel"), LINEAR) for ours in ("gate", "up")]


def import_params(store, cfg: ModelConfig, shapes: dict, dtype, source: str) -> dict:
    return import_table(store, weight_table(cfg), cfg.num_layers, shapes, dtype, source)


def export_params(params: dict, cfg: ModelConfig) -> dict:
    return export_table(params, weight_table(cfg), cfg.num_layers)


def build(cfg: ModelConfig, rngs: nnx.Rngs) -> DecoderLM:
    return DecoderLM(cfg, rngs=rngs)
