"""LLaMA 1/2/3: the shared decoder plus its transformers mapping (models/mistral.py reuses it)."""
from __future__ import annotations

from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.hf_config_fields import ConfigFields, decoder_hf_fields, refuse_quantized, rope_to_hf
from medjax.models.weight_map import LINEAR, decoder_weight_rows, export_table, import_table

MODEL_TYPES = ("llama",)


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


def config_to_hf(cfg: ModelConfig) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **decoder_hf_fields(cfg),
            **rope_to_hf(cfg), "mlp_bias": False}


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
