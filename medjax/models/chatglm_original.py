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
from medjax.models.hf_config_fields import ConfigFields, refuse_quantized
from medjax.models.weight_map import COPY, LINEAR, import_table

_PREFIX = "transformer.encoder.layers.{i}."
QKV = _PREFIX + "self_attention.query_key_value.{kind}"
DENSE_H_TO_4H = _PREFIX + "mlp.dense_h_to_4h.weight"

# ChatGLMConfig fields whose other values change the network, as THUDM's modeling_chatglm.py reads them:
# (field, the values we implement, why). Its other fields are read below or are numerics switches
# (apply_query_key_layer_scaling, attention_softmax_in_fp32, fp32_residual_connection, bias_dropout_fusion,
# original_rope: both rope paths compute the same) or dropout rates (see models/hf_config_fields.py).
_REFUSED = (
    ("rmsnorm", (True,), "ChatGLM2/3 / GLM-4 use RMSNorm"),
    ("apply_residual_connection_post_layernorm", (False,), "the residual adds the block input"),
    ("post_layer_norm", (True,), "a final norm follows the layers"),
    ("add_bias_linear", (False,), "only query_key_value may have a bias (add_qkv_bias)"),
    ("quantization_bit", (0, None), "quantised weights: load the plain checkpoint"),
    ("pre_seq_len", (None,), "P-tuning v2 prefixes: load the plain checkpoint"),
)
_LAYOUT = "ChatGLM2/3 / GLM-4 original layout"


def is_original_layout(store) -> bool:
    return QKV.format(i=0, kind="weight") in store


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    f = ConfigFields(hf, source, _LAYOUT)
    for key, supported, why in _REFUSED:
        f.refuse(key, supported, why)
    refuse_quantized(f)
    heads = f.integer("num_attention_heads")
    groups = f.integer("multi_query_group_num") if f.flag("multi_query_attention", False) else heads
    f.divides("num_attention_heads", heads, "multi_query_group_num", groups)
    hidden = f.integer("hidden_size")
    head_dim = f.integer("kv_channels", None, null=None)
    if head_dim is None:  # THUDM's default: hidden_size // num_attention_heads
        f.divides("hidden_size", hidden, "num_attention_heads", heads)
        head_dim = hidden // heads
    return ModelConfig(
        family="glm",
        vocab_size=f.integer("padded_vocab_size"),
        hidden_size=hidden,
        intermediate_size=f.integer("ffn_hidden_size"),
        num_layers=f.integer("num_layers"),
        num_heads=heads,
        num_kv_heads=groups,
        head_dim=head_dim,
        rope_theta=10000.0 * f.number("rope_ratio", 1.0),
        partial_rotary_factor=0.5,
        rope_interleaved=True,
        norm_eps=f.number("layernorm_epsilon", 1e-5),
        tie_embeddings=f.flag("tie_word_embeddings", False),
        attention_bias=f.flag("add_qkv_bias", False),
        max_position_embeddings=f.integer("seq_length", 2048),
        bos_token_id=f.token_ids("bos_token_id"),
        eos_token_id=f.token_ids("eos_token_id"),
        pad_token_id=f.token_ids("pad_token_id"),
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
