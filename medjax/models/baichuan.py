"""Baichuan 1/2, 7B and 13B, as baichuan-inc published them (model_type "baichuan", remote code).

LLaMA's network (models/decoder.py) under other names and with two switches:
  self_attn.W_pack = [q; k; v] fused [3 * hidden, hidden], no bias, no grouped-query heads;
  positions: rope (base 10000, whole heads) in the 7B models, ALiBi in the 13B models. config.json
    says which, as published: the 7B configs carry max_position_embeddings, the 13B configs only
    model_max_length (the published 13B code reads no max_position_embeddings);
  Baichuan2's NormHead: its modeling code always L2-normalises the head rows and Baichuan 1's never
    does; their configs differ only in vocab_size (125696 in Baichuan2, 64000 in Baichuan 1), which is
    how vLLM and llama.cpp tell them apart too. A `norm_head` field, which medjax writes only where it
    disagrees with that rule (a tiny or resized Baichuan2), decides first.
"""
from __future__ import annotations

import numpy as np
from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.hf_config_fields import ConfigFields, refuse_quantized
from medjax.models.weight_map import COPY, LINEAR, export_table, import_table, split_fused_rows

MODEL_TYPES = ("baichuan",)
BAICHUAN2_VOCAB = 125696
_LAYOUT = "Baichuan"
_LAYER = "model.layers.{i}."
W_PACK = _LAYER + "self_attn.W_pack.weight"
# Published bookkeeping fields carried through to the export: the remote-code entry points
# (architectures: BaiChuanForCausalLM in Baichuan-7B, BaichuanForCausalLM elsewhere), the tokenizer
# class, a 7B config's model_max_length (the tokenizer's limit there) and Baichuan2's training-only z-loss.
_KEPT = ("architectures", "auto_map", "tokenizer_class", "model_max_length", "z_loss_weight")


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    """The fields baichuan-inc's BaichuanConfig / BaiChuanConfig define are read, refused or kept."""
    f = ConfigFields(hf, source, _LAYOUT)
    refuse_quantized(f)
    f.refuse("hidden_act", ("silu",), "Baichuan's MLP uses silu")
    f.refuse("tie_word_embeddings", (False,), "Baichuan's LM head is a weight of its own")
    hidden, heads = f.integer("hidden_size"), f.integer("num_attention_heads")
    f.divides("hidden_size", hidden, "num_attention_heads", heads)
    if "max_position_embeddings" in hf:
        alibi, max_positions = False, f.integer("max_position_embeddings")
    elif "model_max_length" in hf:
        alibi, max_positions = True, f.integer("model_max_length")
    else:
        raise KeyError(f"{source}: config.json has neither max_position_embeddings (Baichuan 7B: rope) nor "
                       f"model_max_length (Baichuan 13B: ALiBi), so the position scheme is unknown ({_LAYOUT})")
    vocab = f.integer("vocab_size")
    kept = {key: hf[key] for key in _KEPT if key in hf and not (alibi and key == "model_max_length")}
    return ModelConfig(
        family="baichuan",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=f.integer("intermediate_size"),
        num_layers=f.integer("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=heads,
        positions="alibi" if alibi else "rope",
        norm_head=f.flag("norm_head", vocab == BAICHUAN2_VOCAB),
        norm_eps=f.number("rms_norm_eps", 1e-6),
        max_position_embeddings=max_positions,
        bos_token_id=f.token_ids("bos_token_id"),
        eos_token_id=f.token_ids("eos_token_id"),
        pad_token_id=f.token_ids("pad_token_id"),
        extra={"model_type": "baichuan", **kept},
    )


def config_to_hf(cfg: ModelConfig) -> dict:
    kept = {key: cfg.extra[key] for key in _KEPT if key in cfg.extra}
    hf = {"architectures": ["BaichuanForCausalLM"], **kept, "model_type": "baichuan",
          "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
          "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
          "num_attention_heads": cfg.num_heads, "hidden_act": "silu", "rms_norm_eps": cfg.norm_eps,
          "initializer_range": 0.02, "tie_word_embeddings": False, "use_cache": True,
          "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "pad_token_id": cfg.pad_token_id,
          "torch_dtype": cfg.param_dtype}
    # the published position field is what tells rope from ALiBi on the way back in
    hf["model_max_length" if cfg.alibi else "max_position_embeddings"] = cfg.max_position_embeddings
    if cfg.norm_head != (cfg.vocab_size == BAICHUAN2_VOCAB):
        hf["norm_head"] = cfg.norm_head
    return hf


def _check(cfg: ModelConfig) -> None:
    if cfg.num_kv_heads != cfg.num_heads or cfg.attention_bias or cfg.tie_embeddings or cfg.post_norms:
        raise ValueError("Baichuan layout: W_pack holds full q, k, v heads without bias, and the head is untied; "
                         f"this ModelConfig has num_kv_heads={cfg.num_kv_heads} (num_heads={cfg.num_heads}), "
                         f"attention_bias={cfg.attention_bias}, tie_embeddings={cfg.tie_embeddings}, "
                         f"post_norms={cfg.post_norms}")


def weight_table(cfg: ModelConfig):
    """The weights that map one to one; W_pack is split and fused below."""
    return [
        ("model.embed_tokens.weight", ("embed", "embedding"), COPY),
        ("model.norm.weight", ("final_norm", "scale"), COPY),
        ("lm_head.weight", ("lm_head", "kernel"), LINEAR),
        (_LAYER + "input_layernorm.weight", ("layers", "attn_norm", "scale"), COPY),
        (_LAYER + "post_attention_layernorm.weight", ("layers", "mlp_norm", "scale"), COPY),
        (_LAYER + "self_attn.o_proj.weight", ("layers", "attn", "o", "kernel"), LINEAR),
        (_LAYER + "mlp.gate_proj.weight", ("layers", "mlp", "gate", "kernel"), LINEAR),
        (_LAYER + "mlp.up_proj.weight", ("layers", "mlp", "up", "kernel"), LINEAR),
        (_LAYER + "mlp.down_proj.weight", ("layers", "mlp", "down", "kernel"), LINEAR),
    ]


def import_params(store, cfg: ModelConfig, shapes: dict, dtype, source: str) -> dict:
    _check(cfg)
    params = import_table(store, weight_table(cfg), cfg.num_layers, shapes, dtype, source)
    d = cfg.hidden_size
    qkv = split_fused_rows(store, W_PACK, cfg.num_layers, (d, d, d), d, dtype, source,
                           "3 * hidden_size, hidden_size")
    for role, kernel in zip("qkv", qkv):
        params["layers"]["attn"][role] = {"kernel": kernel}
    return params


def export_params(params: dict, cfg: ModelConfig) -> dict:
    _check(cfg)
    out = export_table(params, weight_table(cfg), cfg.num_layers)
    attn = params["layers"]["attn"]
    # our kernels are [in, out]; W_pack is [q; k; v] rows of HF's [out, in]
    fused = np.concatenate([np.asarray(attn[role]["kernel"]) for role in "qkv"], axis=-1)
    for i in range(cfg.num_layers):
        out[W_PACK.format(i=i)] = fused[i].T
    return out


def fused_linears(cfg: ModelConfig) -> dict:
    """W_pack for PEFT adapters (peft/adapter_io.py): HF module -> (our q, k, v paths, fuse, split);
    its rows are all of q, then k, then v."""
    d = cfg.hidden_size
    return {_LAYER + "self_attn.W_pack": (tuple(("layers", "attn", role) for role in "qkv"),
                                          lambda parts: parts.reshape(3 * d, *parts.shape[2:]),
                                          lambda fused: fused.reshape(3, d, *fused.shape[1:]))}


def build(cfg: ModelConfig, rngs: nnx.Rngs) -> DecoderLM:
    _check(cfg)
    return DecoderLM(cfg, rngs=rngs)
