"""Next-token choice from logits: greedy, or temperature with top-k / top-p filtering."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def filter_logits(logits_BxV, top_k: int, top_p: float):
    """Sets logits outside the top-k and outside the top-p nucleus to -inf (at least one survives)."""
    neg = jnp.finfo(logits_BxV.dtype).min
    if top_k and top_k > 0:
        kth_B1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_B1, neg, logits_BxV)
    if top_p < 1.0:
        sorted_BxV = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
        cum_BxV = jnp.cumsum(jax.nn.softmax(sorted_BxV, axis=-1), axis=-1)
        # smallest logit still inside the nucleus: the first one whose preceding mass reaches top_p is cut
        inside_BxV = (cum_BxV - jax.nn.softmax(sorted_BxV, axis=-1)) < top_p
        cutoff_B1 = jnp.min(jnp.where(inside_BxV, sorted_BxV, jnp.inf), axis=-1, keepdims=True)
        logits_BxV = jnp.where(logits_BxV < cutoff_B1, neg, logits_BxV)
    return logits_BxV


def choose_tokens(logits_BxV, key, temperature: float, top_k: int, top_p: float):
    if temperature <= 0.0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits_BxV = filter_logits(logits_BxV.astype(jnp.float32) / temperature, top_k, top_p)
    return jax.random.categorical(key, logits_BxV, axis=-1).astype(jnp.int32)
