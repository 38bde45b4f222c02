"""An independent Baichuan / Baichuan2 forward pass in plain numpy, for one row, in the published layout.

Written from the published architecture, not from medjax: baichuan-inc's `modeling_baichuan.py` of
Baichuan-7B, Baichuan-13B-Base, Baichuan2-7B-Base and Baichuan2-13B-Base (BaichuanLayer, Attention,
MLP, RMSNorm, RotaryEmbedding, _get_interleave, _gen_alibi_mask, NormHead) and ALiBi (Press et al.,
ICLR 2022, arXiv:2108.12409):
  * W_pack [3 * hidden, hidden] -> q, k, v (rows in that order); pre-RMSNorm; SwiGLU MLP; untied head;
  * 7B: rope, rotate-half pairs, base 10000, positions 0..T-1; scores / sqrt(head_dim), causal;
  * 13B (config.json without max_position_embeddings): no rope; scores / sqrt(head_dim) +
    slope_h * key_index, with future keys at -inf (the published mask adds the slope times the key's
    index, not the distance); slopes by the recursive power-of-two rule of _get_interleave;
  * Baichuan2 (norm_head): logits = h @ normalize(lm_head.weight)^T, each row divided by
    max(||row||, 1e-12) (torch's F.normalize).
"""
from __future__ import annotations

import math

import numpy as np


def interleave_slopes(n: int) -> list[float]:
    """The published recursion: a power of two n gets start^1..start^n with start = 2^(-2^-(log2 n - 3));
    otherwise the closest lower power of two's slopes, then the even-indexed slopes of twice that."""
    if math.log2(n).is_integer():
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    closest = 2 ** math.floor(math.log2(n))
    return interleave_slopes(closest) + interleave_slopes(2 * closest)[0::2][: n - closest]


def _rms(x, w, eps):
    return w * (x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps))


def _softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _rope(x, positions):  # x [H, T, E], rotate-half
    e = x.shape[-1]
    inv = 1.0 / (10000 ** (np.arange(0, e, 2, dtype=np.float64) / e))
    emb = np.concatenate([positions[:, None] * inv[None, :]] * 2, -1)
    rotated = np.concatenate([-x[..., e // 2:], x[..., : e // 2]], -1)
    return x * np.cos(emb) + rotated * np.sin(emb)


def baichuan_logits(weights: dict, hf: dict, ids, norm_head: bool) -> np.ndarray:
    """Logits [T, V] of one row of token ids. `weights`: HF names -> arrays; `hf`: config.json."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    heads, d, eps = hf["num_attention_heads"], hf["hidden_size"], hf["rms_norm_eps"]
    e, t = d // heads, len(ids)
    alibi = "max_position_embeddings" not in hf
    future = np.triu(np.full((t, t), -np.inf), 1)
    if alibi:
        bias = np.asarray(interleave_slopes(heads))[:, None, None] * np.arange(t)[None, None, :] + future
    else:
        bias = np.broadcast_to(future, (heads, t, t))
    x = w["model.embed_tokens.weight"][np.asarray(ids)]
    for i in range(hf["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q, k, v = np.split(h @ w[p + "self_attn.W_pack.weight"].T, 3, axis=-1)
        q, k, v = (a.reshape(t, heads, e).transpose(1, 0, 2) for a in (q, k, v))
        if not alibi:
            q, k = _rope(q, np.arange(t, dtype=np.float64)), _rope(k, np.arange(t, dtype=np.float64))
        probs = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(e) + bias)
        attn = (probs @ v).transpose(1, 0, 2).reshape(t, d)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + (_silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
    x = _rms(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"]
    if norm_head:
        head = head / np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)
    return x @ head.T
