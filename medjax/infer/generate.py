"""Batched KV-cache generation: left-padded prompts, one compiled program per shape bucket.

The prompt batch is left-padded to a length bucket (multiple of 16) and the number of new tokens
to a power of two, so repeated calls with similar shapes reuse one compilation. Prefill writes the
whole prompt into the cache; a `while_loop` then decodes one token per step until every row has
produced EOS or the budget is spent. A prompt-tuned model's `init_cache` hands back a cache that
already holds its soft prompt (peft/prompt_tuning.py), so the prompt batch goes in behind it.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

from medjax.infer.sampling import choose_tokens
from medjax.parallel.rules import activation_sharding, constrain

# k/v caches are [L, B, S, heads, E] in every backbone; on a mesh they follow the attention heads
KV_CACHE_AXES = ("layers", "batch", "cache_seq", "kv_heads", "head_dim")


def _bucket(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def left_pad(prompts: list[list[int]], length: int, pad_id: int):
    tokens = np.full((len(prompts), length), pad_id, np.int32)
    segments = np.zeros((len(prompts), length), np.int32)
    for row, ids in enumerate(prompts):
        if ids:
            tokens[row, length - len(ids):] = ids
            segments[row, length - len(ids):] = 1
    positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0).astype(np.int32)
    return tokens, segments, positions


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "temperature", "top_k", "top_p"))
def _generate(graphdef, state, tokens_BxP, segments_BxP, positions_BxP, eos_ids, key, *, steps, temperature,
              top_k, top_p):
    model = nnx.merge(graphdef, state)
    b, p = tokens_BxP.shape
    cache = model.init_cache(b, p + steps)
    cache = {**cache, "k": constrain(cache["k"], KV_CACHE_AXES), "v": constrain(cache["v"], KV_CACHE_AXES),
             **{key: constrain(cache[key], ("batch", "cache_seq")) for key in ("segment_ids", "positions")
                if key in cache}}  # positions: sliding-window and ALiBi models only
    logits_BxPxV, cache = model(tokens_BxP, positions_BxP, segments_BxP, cache=cache)
    next_pos_B = positions_BxP[:, -1] + 1

    def cond(carry):
        i, _, _, _, done_B, _ = carry
        return (i < steps) & ~jnp.all(done_B)

    def step(carry):
        i, logits_BxV, cache, pos_B, done_B, out_BxN = carry
        tok_B = choose_tokens(logits_BxV, jax.random.fold_in(key, i), temperature, top_k, top_p)
        tok_B = jnp.where(done_B, 0, tok_B)
        out_BxN = out_BxN.at[:, i].set(jnp.where(done_B, -1, tok_B))
        done_B = done_B | jnp.isin(tok_B, eos_ids)
        logits_Bx1xV, cache = model(tok_B[:, None], pos_B[:, None], jnp.ones((b, 1), jnp.int32), cache=cache)
        return i + 1, logits_Bx1xV[:, 0], cache, pos_B + 1, done_B, out_BxN

    carry = (jnp.int32(0), logits_BxPxV[:, -1], cache, next_pos_B, jnp.zeros((b,), bool),
             jnp.full((b, steps), -1, jnp.int32))
    return jax.lax.while_loop(cond, step, carry)[-1]


def _mesh_of(state):
    """The mesh the weights live on (None on one device): decoding activations and the cache follow it."""
    for x in jax.tree.leaves(state):
        sharding = getattr(x, "sharding", None)
        if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1:
            return sharding.mesh
    return None


def generate(model, prompts: list[list[int]], max_new_tokens: int = 64, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, seed: int = 0, eos_id=None, pad_id: int = 0) -> list[list[int]]:
    """New token ids for each prompt, up to and including the first EOS (eos_id: int or list)."""
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token (add BOS)")
    if max_new_tokens <= 0:
        return [[] for _ in prompts]
    eos = [] if eos_id is None else ([eos_id] if isinstance(eos_id, int) else list(eos_id))
    length = _bucket(max(len(p) for p in prompts), 16)
    tokens, segments, positions = left_pad(prompts, length, pad_id)
    graphdef, state = nnx.split(model)
    with activation_sharding(_mesh_of(state)):  # traced with the constraints of the weights' mesh
        out = _generate(graphdef, state, tokens, segments, positions, jnp.asarray(eos or [-1], jnp.int32),
                        jax.random.PRNGKey(seed), steps=_pow2(max_new_tokens), temperature=float(temperature),
                        top_k=int(top_k), top_p=float(top_p))
    results = []
    for row in np.asarray(out):
        ids = [int(t) for t in row[:max_new_tokens] if t >= 0]
        for j, t in enumerate(ids):
            if t in eos:
                ids = ids[: j + 1]
                break
        results.append(ids)
    return results
