"""An independent GLM v1 forward pass in plain numpy, for one row, in the original checkpoint layout.

Written from the published architecture, not from medjax:
  * ChatGLM-6B: THUDM/chatglm-6b `modeling_chatglm.py` (GLMBlock, SelfAttention, RotaryEmbedding,
    get_masks, get_position_ids) and the GLM paper (Du et al., ACL 2022, arXiv:2103.10360):
    2D rotary on the two halves of each head (rotate-half pairs; table built in fp16), per-head
    interleaved query_key_value, LayerNorm, tanh-GeLU, residual = alpha * LN(x) + sublayer(LN(x))
    with alpha = sqrt(2 * num_layers), untied lm_head.
  * GLM-10B: THUDM/glm-10b `modeling_glm.py` (GLMModel, GLMStack, GLMBlock, SelfAttention, MLP):
    word + position + block position embeddings, pre-LN, q|k|v stacked in query_key_value,
    erf-GeLU, scores * mask - 65504 * (1 - mask), logits against the word embeddings.
Positions follow the original single-blank rule: context = tokens before <sop>; from <sop> on the
position is that of [gMASK] (or [MASK] when there is no [gMASK]) and block positions count 1, 2, ...
The mask: every token sees the context, and the tokens after it causally.
"""
from __future__ import annotations

import math

import numpy as np


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def _gelu_erf(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def _softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def positions_and_mask(ids, sop, mask_id, gmask_id):
    """2D positions [2, T] and the visibility matrix [T, T] (1 = may attend)."""
    ids = list(ids)
    t = len(ids)
    ctx = ids.index(sop) if sop in ids else t
    blank = gmask_id if gmask_id in ids else mask_id
    mask_pos = ids.index(blank) if blank in ids[:ctx] else ctx
    position = np.arange(t)
    position[ctx:] = mask_pos
    block = np.concatenate([np.zeros(ctx, int), np.arange(1, t - ctx + 1)])
    visible = np.tril(np.ones((t, t)))
    visible[:, :ctx] = 1
    return np.stack([position, block]), visible


def _rope_table_fp16(positions, dim):
    inv = (1.0 / (10000 ** (np.arange(0, dim, 2, dtype=np.float32) / dim))).astype(np.float16)
    angles = positions.astype(np.float16)[:, None] * inv[None, :]  # fp16 products, as the original
    emb = np.concatenate([angles, angles], -1)
    return np.cos(emb.astype(np.float64)).astype(np.float16).astype(np.float64), \
        np.sin(emb.astype(np.float64)).astype(np.float16).astype(np.float64)


def _rotate(x, cos, sin):  # x [T, H, d]
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def chatglm6b_logits(w: dict, cfg: dict, ids) -> np.ndarray:
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    n_layers, heads, d = cfg["num_layers"], cfg["num_attention_heads"], cfg["hidden_size"]
    e = d // heads
    pos2d, visible = positions_and_mask(ids, cfg["bos_token_id"], cfg["mask_token_id"], cfg["gmask_token_id"])
    cos_p, sin_p = _rope_table_fp16(pos2d[0], e // 2)
    cos_b, sin_b = _rope_table_fp16(pos2d[1], e // 2)
    x = w["transformer.word_embeddings.weight"][np.asarray(ids)]
    t = len(ids)
    alpha = math.sqrt(2 * n_layers)
    for i in range(n_layers):
        p = f"transformer.layers.{i}."
        h = _layer_norm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], cfg["layernorm_epsilon"])
        mixed = (h @ w[p + "attention.query_key_value.weight"].T + w[p + "attention.query_key_value.bias"])
        mixed = mixed.reshape(t, heads, 3 * e)
        q, k, v = mixed[..., :e], mixed[..., e:2 * e], mixed[..., 2 * e:]
        q = np.concatenate([_rotate(q[..., :e // 2], cos_p, sin_p), _rotate(q[..., e // 2:], cos_b, sin_b)], -1)
        k = np.concatenate([_rotate(k[..., :e // 2], cos_p, sin_p), _rotate(k[..., e // 2:], cos_b, sin_b)], -1)
        scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(e)
        scores = np.where(visible[None] > 0, scores, -1e30)
        ctx = np.einsum("hts,shd->thd", _softmax(scores), v).reshape(t, d)
        attn = ctx @ w[p + "attention.dense.weight"].T + w[p + "attention.dense.bias"]
        x = h * alpha + attn
        h = _layer_norm(x, w[p + "post_attention_layernorm.weight"], w[p + "post_attention_layernorm.bias"],
                        cfg["layernorm_epsilon"])
        m = _gelu_tanh(h @ w[p + "mlp.dense_h_to_4h.weight"].T + w[p + "mlp.dense_h_to_4h.bias"])
        x = h * alpha + (m @ w[p + "mlp.dense_4h_to_h.weight"].T + w[p + "mlp.dense_4h_to_h.bias"])
    x = _layer_norm(x, w["transformer.final_layernorm.weight"], w["transformer.final_layernorm.bias"],
                    cfg["layernorm_epsilon"])
    return x @ w["lm_head.weight"].T


def glm10b_logits(w: dict, cfg: dict, ids) -> np.ndarray:
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    heads, d = cfg["num_attention_heads"], cfg["hidden_size"]
    e, t, eps = d // heads, len(ids), cfg.get("layernorm_epsilon", 1e-5)
    pos2d, visible = positions_and_mask(ids, cfg["sop_token_id"], cfg["mask_token_id"], cfg["gmask_token_id"])
    s = "glm.transformer."
    x = (w["glm.word_embeddings.weight"][np.asarray(ids)] + w[s + "position_embeddings.weight"][pos2d[0]]
         + w[s + "block_position_embeddings.weight"][pos2d[1]])
    for i in range(cfg["num_layers"]):
        p = f"{s}layers.{i}."
        h = _layer_norm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps)
        mixed = h @ w[p + "attention.query_key_value.weight"].T + w[p + "attention.query_key_value.bias"]
        q, k, v = (part.reshape(t, heads, e) for part in np.split(mixed, 3, axis=-1))
        scores = np.einsum("thd,shd->hts", q, k / math.sqrt(e))
        scores = scores * visible[None] - 65504.0 * (1.0 - visible[None])
        ctx = np.einsum("hts,shd->thd", _softmax(scores), v).reshape(t, d)
        x = x + ctx @ w[p + "attention.dense.weight"].T + w[p + "attention.dense.bias"]
        h = _layer_norm(x, w[p + "post_attention_layernorm.weight"], w[p + "post_attention_layernorm.bias"], eps)
        m = _gelu_erf(h @ w[p + "mlp.dense_h_to_4h.weight"].T + w[p + "mlp.dense_h_to_4h.bias"])
        x = x + m @ w[p + "mlp.dense_4h_to_h.weight"].T + w[p + "mlp.dense_4h_to_h.bias"]
    x = _layer_norm(x, w[s + "final_layernorm.weight"], w[s + "final_layernorm.bias"], eps)
    return x @ w["glm.word_embeddings.weight"].T
