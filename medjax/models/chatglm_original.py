"""ChatGLM2-6B, ChatGLM3-6B and GLM-4-9B as THUDM published them (model_type "chatglm", remote code).

Same network as transformers' GlmForCausalLM, different names and fusions:
  query_key_value = [q (num_heads x kv_channels); k (groups x kv_channels); v (groups x kv_channels)]
  dense_h_to_4h   = [gate; up] (SwiGLU), dense = o, output_layer = lm_head
  rotary: the first half of each head, interleaved pairs, base 10000 * rope_ratio.
Loading yields a family "glm" model; saving writes transformers' Glm layout, so
`python -m medjax.convert --src=hf:ORIGINAL --dst=hf:OUT` converts.
"""
from __future__ import annotations

import numpy as np

from medjax.models.config import ModelConfig
from medjax.models.weight_map import COPY, LINEAR, import_table

_PREFIX = "transformer.encoder.layers.{i}."
QKV = _PREFIX + "self_attention.query_key_value.{kind}"
DENSE_H_TO_4H = _PREFIX + "mlp.dense_h_to_4h.weight"

# ChatGLMConfig flags whose other values change the network: (field, value we support, default).
_FIXED_FLAGS = (
    ("rmsnorm", True, True),
    ("apply_residual_connection_post_layernorm", False, False),
    ("post_layer_norm", True, True),
    ("add_bias_linear", False, False),
)


def is_original_layout(store) -> bool:
    return QKV.format(i=0, kind="weight") in store


def _required(hf: dict, key: str, source: str):
    if key not in hf:
        raise KeyError(f"{source}: config.json lacks required field {key!r} (ChatGLM2/3 / GLM-4 original layout)")
    return hf[key]


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    for key, supported, default in _FIXED_FLAGS:
        if hf.get(key, default) != supported:
            raise ValueError(f"{source}: {key}={hf[key]!r} is not supported (ChatGLM2/3 / GLM-4 use {supported})")
    heads = _required(hf, "num_attention_heads", source)
    groups = _required(hf, "multi_query_group_num", source) if hf.get("multi_query_attention", False) else heads
    return ModelConfig(
        family="glm",
        vocab_size=_required(hf, "padded_vocab_size", source),
        hidden_size=_required(hf, "hidden_size", source),
        intermediate_size=_required(hf, "ffn_hidden_size", source),
        num_layers=_required(hf, "num_layers", source),
        num_heads=heads,
        num_kv_heads=groups,
        head_dim=hf.get("kv_channels") or _required(hf, "hidden_size", source) // heads,
        rope_theta=10000.0 * float(hf.get("rope_ratio", 1)),
        partial_rotary_factor=0.5,
        rope_interleaved=True,
        norm_eps=hf.get("layernorm_epsilon", 1e-5),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        attention_bias=hf.get("add_qkv_bias", False),
        max_position_embeddings=hf.get("seq_length", 2048),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
        extra={"model_type": "glm"},
    )


def weight_table(cfg: ModelConfig):
    """The weights that map one to one; query_key_value and dense_h_to_4h are split below."""
    table = [
        ("transformer.embedding.word_embeddings.weight", ("embed", "embedding"), COPY),
        ("transformer.encoder.final_layernorm.weight", ("final_norm", "scale"), COPY),
        (_PREFIX + "input_layernorm.weight", ("layers", "attn_norm", "scale"), COPY),
        (_PREFIX + "post_attention_layernorm.weight", ("layers", "mlp_norm", "scale"), COPY),
        (_PREFIX + "self_attention.dense.weight", ("layers", "attn", "o", "kernel"), LINEAR),
        (_PREFIX + "mlp.dense_4h_to_h.weight", ("layers", "mlp", "down", "kernel"), LINEAR),
    ]
    if not cfg.tie_embeddings:
        table.append(("transformer.output_layer.weight", ("lm_head", "kernel"), LINEAR))
    return table


def _split_qkv(store, cfg: ModelConfig, kind: str, dtype, source: str) -> dict[str, np.ndarray]:
    sizes = [cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim]
    expected = (sum(sizes), cfg.hidden_size) if kind == "weight" else (sum(sizes),)
    parts: dict[str, list] = {"q": [], "k": [], "v": []}
    for i in range(cfg.num_layers):
        name = QKV.format(i=i, kind=kind)
        if name not in store:
            raise KeyError(f"{source}: missing weight {name!r}")
        fused = np.asarray(store.get(name))
        if fused.shape != expected:
            raise ValueError(f"{source}: weight {name!r} has shape {fused.shape}, expected {expected} from "
                             "num_attention_heads, multi_query_group_num, kv_channels and hidden_size")
        q, k, v = np.split(fused, np.cumsum(sizes)[:2], axis=0)
        for role, arr in zip("qkv", (q, k, v)):
            parts[role].append(arr.T if kind == "weight" else arr)
    return {role: np.stack(arrs).astype(dtype) for role, arrs in parts.items()}


def import_params(store, cfg: ModelConfig, shapes: dict, dtype, source: str) -> dict:
    from medjax.models.glm import split_gate_up

    params = import_table(store, weight_table(cfg), cfg.num_layers, shapes, dtype, source)
    kernels = _split_qkv(store, cfg, "weight", dtype, source)
    biases = _split_qkv(store, cfg, "bias", dtype, source) if cfg.attention_bias else {}
    for role in "qkv":
        params["layers"]["attn"][role] = {"kernel": kernels[role], **({"bias": biases[role]} if biases else {})}
    gate, up = split_gate_up(store, DENSE_H_TO_4H, cfg, dtype, source)
    params["layers"]["mlp"]["gate"] = {"kernel": gate}
    params["layers"]["mlp"]["up"] = {"kernel": up}
    return params
