"""LLaMA 1/2/3 and Mistral-style models: the shared decoder plus their transformers mapping."""
from __future__ import annotations

from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.weight_map import COPY, LINEAR, export_table, import_table

MODEL_TYPES = ("llama", "mistral")


def required(hf: dict, key: str, source: str):
    if key not in hf:
        raise KeyError(f"{source}: config.json lacks required field {key!r}")
    return hf[key]


def rope_from_hf(hf: dict) -> tuple[float, dict | None]:
    """(rope_theta, scaling) from either transformers 5 `rope_parameters` or the older fields."""
    params = hf.get("rope_parameters")
    if params:
        theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
        scaling = None if params.get("rope_type", "default") == "default" else {
            k: v for k, v in params.items() if k != "rope_theta"}
        return theta, scaling
    return float(hf.get("rope_theta", 10000.0)), hf.get("rope_scaling")


def rope_to_hf(cfg: ModelConfig) -> dict:
    params = {"rope_theta": cfg.rope_theta, "rope_type": "default", **(cfg.rope_scaling or {})}
    return {"rope_parameters": params, "rope_theta": cfg.rope_theta}


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    if hf.get("mlp_bias"):
        raise ValueError(f"{source}: mlp_bias=true is not supported for LLaMA")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{source}: hidden_act={act!r} is not supported (LLaMA uses silu)")
    heads = required(hf, "num_attention_heads", source)
    theta, scaling = rope_from_hf(hf)
    return ModelConfig(
        family="llama",
        vocab_size=required(hf, "vocab_size", source),
        hidden_size=required(hf, "hidden_size", source),
        intermediate_size=required(hf, "intermediate_size", source),
        num_layers=required(hf, "num_hidden_layers", source),
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim"),
        rope_theta=theta,
        rope_scaling=scaling,
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        attention_bias=hf.get("attention_bias", False),
        max_position_embeddings=hf.get("max_position_embeddings", 4096),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
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
