"""The decoder of every family (LLaMA, Mistral, Qwen2, GLM, GLM-4, Baichuan, GLM v1): the config's typed
parts choose the differences (models/config.py): the position scheme (rope, ALiBi, GLM's 2D rotary or
learned tables), the mask (causal or prefix), RMS / Layer norm, SwiGLU or GeLU MLP, biases, the
residual, norm and tie of the head.

Layers are created stacked (one leading `layers` axis on every parameter) and run under
`jax.lax.scan`, so compile time does not grow with depth (shallow models on CPU: a Python loop, see
`run_layers`); `config.remat` picks what the backward pass recomputes and `config.attention` the
attention kernel (models/attention_kernels.py). Where the T new tokens sit (positions, GLM's block
positions and Part A) comes from `DecoderLM.token_layout`, which a family may override
(models/glm_v1.py derives it from the ids).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from medjax.models import attention_kernels
from medjax.models.config import ModelConfig
from medjax.models.head import output_head
from medjax.models.layers import (Embed, LayerNorm, Linear, PositionTable, RMSNorm, alibi_slopes,
                                  apply_rope_sections, attention_mask, causal_query_blocks_attention,
                                  dot_product_attention, fp16_rope_cos_sin,
                                  key_distance, rope_cos_sin, rope_inv_freq, sliding_window_mask)
from medjax.parallel.rules import constrain

_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}
_GELU = {"gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
         "gelu": lambda x: jax.nn.gelu(x, approximate=False)}


CPU_LOOP_MAX_LAYERS = 12  # deeper models on CPU scan: a Python loop's compile time grows with depth


def run_layers(body, x, xs, platform: str):
    """`jax.lax.scan(body, x, xs)` over the stacked layers.

    TPU and GPU: a scan of one layer per iteration. Compile time does not grow with depth, and the TPU
    compiler given two layers holds both working sets (llama2-7b full, v5e:4x4: 6.87 GiB of temporaries
    against 6.72) and compiles twice as long.
    CPU, up to CPU_LOOP_MAX_LAYERS layers: a Python loop. A scan's backward keeps each layer's residuals
    in stacked buffers that XLA:CPU zero-fills every step; without them the bench50m step ran ~5% faster.
    The loop's compile time grows with depth (32 `test`-sized layers: 11.9 s against a scan's 3.0 s), so
    deeper models scan two layers per iteration (~4% faster than one on CPU)."""
    layers = jax.tree.leaves(xs)[0].shape[0]
    if platform != "cpu":
        return jax.lax.scan(body, x, xs)
    if layers > CPU_LOOP_MAX_LAYERS:
        return jax.lax.scan(body, x, xs, unroll=2)
    outputs = []
    for i in range(layers):
        x, y = body(x, jax.tree.map(lambda a: a[i], xs))
        outputs.append(y)
    return x, jax.tree.map(lambda *ys: jnp.stack(ys), *outputs)


class TokenLayout(NamedTuple):
    """Where the T new tokens sit, as the position scheme and the mask read it."""
    position_BxT: jax.Array  # rope / ALiBi / sliding-window / learned-table position
    block_BxT: jax.Array | None = None  # GLM v1's block position (0 in Part A)
    prefix_BxT: jax.Array | None = None  # mask "prefix": keys every query of their segment sees (Part A)
    cache_state: dict | None = None  # a family's own cache entries after this call (with a cache)


def norm(cfg: ModelConfig):
    cls = LayerNorm if cfg.norm == "layer" else RMSNorm
    return cls(cfg.hidden_size, eps=cfg.norm_eps, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, hd = cfg.hidden_size, cfg.head_dim
        kw = dict(dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype, rngs=rngs)
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, hd
        self.q = Linear(d, cfg.num_heads * hd, axes=("embed", "q_heads"), use_bias=cfg.attention_bias, **kw)
        self.k = Linear(d, cfg.num_kv_heads * hd, axes=("embed", "kv_heads"), use_bias=cfg.attention_bias, **kw)
        self.v = Linear(d, cfg.num_kv_heads * hd, axes=("embed", "kv_heads"), use_bias=cfg.attention_bias, **kw)
        self.o = Linear(cfg.num_heads * hd, d, axes=("q_heads", "embed"), use_bias=cfg.attention_out_bias, **kw)
        self.rope_interleaved = cfg.rope_interleaved

    def __call__(self, x_BxTxD, rope, attend, kv_cache=None, cache_index=None):
        """`rope`: (cos, sin) sections (layers.apply_rope_sections), None without rotary (ALiBi, learned
        tables); `attend(q, k, v) -> out`: the kernel with this call's mask (attention_function)."""
        b, t, _ = x_BxTxD.shape
        q_BxTxHxE = self.q(x_BxTxD).reshape(b, t, self.num_heads, self.head_dim)
        k_BxTxKxE = self.k(x_BxTxD).reshape(b, t, self.num_kv_heads, self.head_dim)
        v_BxTxKxE = self.v(x_BxTxD).reshape(b, t, self.num_kv_heads, self.head_dim)
        if rope is not None:
            q_BxTxHxE = apply_rope_sections(q_BxTxHxE, rope, self.rope_interleaved)
            k_BxTxKxE = apply_rope_sections(k_BxTxKxE, rope, self.rope_interleaved)
        if kv_cache is not None:  # write this step's keys/values into the cache, attend over all of it
            k_cache, v_cache = kv_cache
            k_BxTxKxE = jax.lax.dynamic_update_slice_in_dim(k_cache, k_BxTxKxE.astype(k_cache.dtype), cache_index, 1)
            v_BxTxKxE = jax.lax.dynamic_update_slice_in_dim(v_cache, v_BxTxKxE.astype(v_cache.dtype), cache_index, 1)
            kv_cache = (k_BxTxKxE, v_BxTxKxE)
        out_BxTxHxE = attend(q_BxTxHxE, k_BxTxKxE.astype(q_BxTxHxE.dtype), v_BxTxKxE.astype(q_BxTxHxE.dtype))
        return self.o(out_BxTxHxE.reshape(b, t, -1)), kv_cache


class MLP(nnx.Module):
    """SwiGLU, down(silu(gate(x)) * up(x)), or plain down(gelu(up(x)))."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        kw = dict(use_bias=cfg.mlp_bias, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype, rngs=rngs)
        self.activation = cfg.mlp
        if cfg.mlp == "gated_silu":
            self.gate = Linear(d, f, axes=("embed", "mlp"), **kw)
        self.up = Linear(d, f, axes=("embed", "mlp"), **kw)
        self.down = Linear(f, d, axes=("mlp", "embed"), **kw)

    def __call__(self, x_BxTxD):
        if self.activation == "gated_silu":
            h_BxTxF = jax.nn.silu(self.gate(x_BxTxD)) * self.up(x_BxTxD)
        else:
            h_BxTxF = _GELU[self.activation](self.up(x_BxTxD))
        return self.down(constrain(h_BxTxF, ("batch", "seq", "act_mlp")))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.attn_norm = norm(cfg)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = norm(cfg)
        self.mlp = MLP(cfg, rngs=rngs)
        if cfg.post_norms:
            self.post_attn_norm = norm(cfg)
            self.post_mlp_norm = norm(cfg)
        self.post_norms = cfg.post_norms
        # ChatGLM-6B's residual carries the normalised input, scaled (its "DeepNorm"-style alpha)
        self.alpha = math.sqrt(2 * cfg.num_layers) if cfg.residual == "scaled_normed" else None

    def __call__(self, x_BxTxD, rope, attend, kv_cache=None, cache_index=None):
        h_BxTxD = self.attn_norm(x_BxTxD)
        a_BxTxD, kv_cache = self.attn(h_BxTxD, rope, attend, kv_cache, cache_index)
        if self.post_norms:
            a_BxTxD = self.post_attn_norm(a_BxTxD)
        x_BxTxD = h_BxTxD * self.alpha + a_BxTxD if self.alpha else x_BxTxD + a_BxTxD
        h_BxTxD = self.mlp_norm(x_BxTxD)
        m_BxTxD = self.mlp(h_BxTxD)
        if self.post_norms:
            m_BxTxD = self.post_mlp_norm(m_BxTxD)
        x_BxTxD = h_BxTxD * self.alpha + m_BxTxD if self.alpha else x_BxTxD + m_BxTxD
        return constrain(x_BxTxD, ("batch", "seq", "act_embed")), kv_cache


def attention_function(cfg: ModelConfig, kernel: str, mask_Bx1xTxS, alibi, segment_ids_BxT, prefix_BxT,
                       query_blocks: int = 1):
    """attend(q, k, v) -> out of a call: `kernel` (attention_kernels.choose) over this call's mask. The
    dense mask feeds xla and cudnn; splash reads the segment ids and Part A (its order is the slots).
    `query_blocks` > 1: a causal no-cache xla call in row blocks (attention_kernels.xla_query_blocks)."""
    if kernel == "splash":
        return functools.partial(attention_kernels.splash_attention, segment_BxT=segment_ids_BxT,
                                 window=cfg.sliding_window, prefix_BxT=prefix_BxT)
    if kernel == "cudnn":
        return functools.partial(attention_kernels.cudnn_attention, mask_Bx1xTxS=mask_Bx1xTxS,
                                 causal=cfg.mask == "causal")
    if query_blocks > 1:
        return functools.partial(causal_query_blocks_attention, mask_Bx1xTxT=mask_Bx1xTxS, alibi=alibi,
                                 blocks=query_blocks)
    return functools.partial(dot_product_attention, mask_Bx1xTxS=mask_Bx1xTxS, alibi=alibi)


def stacked_blocks(cfg: ModelConfig, rngs: nnx.Rngs):
    """num_layers Blocks whose parameters share a leading `layers` axis."""

    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return Block(cfg, rngs=rngs)

    return make(rngs)


def rope_sections(cfg: ModelConfig, layout: TokenLayout):
    """(cos, sin) per rotated slice of each head, or None when the scheme has no rotary."""
    if cfg.positions == "rope":
        inv_freq = rope_inv_freq(cfg.rotary_dim, cfg.rope_theta, cfg.rope_scaling)
        return (rope_cos_sin(layout.position_BxT, inv_freq),)
    if cfg.positions == "glm2d_rope":  # ChatGLM-6B: the position turns the first half, the block position the second
        return tuple(fp16_rope_cos_sin(p, cfg.head_dim // 2, cfg.rope_theta)
                     for p in (layout.position_BxT, layout.block_BxT))
    return None


class DecoderLM(nnx.Module):
    """Token ids -> logits. Optional KV cache for decoding (see infer/generate.py)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        glm_layout = cfg.mask == "prefix" or cfg.positions.startswith("glm")
        if glm_layout and type(self).token_layout is DecoderLM.token_layout:
            raise ValueError(f"ModelConfig mask={cfg.mask!r}, positions={cfg.positions!r} need GLM's block positions "
                             "and Part A from the ids: build the model with models/glm_v1.py (family glm_v1)")
        self.config = cfg
        kw = dict(dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype)
        self.embed = Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs, **kw)
        if cfg.positions == "glm_learned":  # GLM-10B keeps max_sequence_length + 1 rows
            rows = cfg.max_position_embeddings + 1
            self.position_embed = PositionTable(rows, cfg.hidden_size, rngs=rngs, **kw)
            self.block_position_embed = PositionTable(rows, cfg.hidden_size, rngs=rngs, **kw)
        self.layers = stacked_blocks(cfg, rngs)
        self.final_norm = norm(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size, axes=("embed", "vocab"), fp32_output=True,
                                  normalize_kernel=cfg.norm_head, rngs=rngs, **kw)

    def init_cache(self, batch: int, max_len: int) -> dict:
        return init_cache(self.config, batch, max_len)

    def embed_tokens(self, tokens_BxT):
        return self.embed(tokens_BxT)

    def token_layout(self, tokens_BxT, positions_BxT, segment_ids_BxT, cache) -> TokenLayout:
        """The family's position provider. Here: positions as given, 0..T-1 when None."""
        if positions_BxT is None:
            b, t = tokens_BxT.shape
            positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        return TokenLayout(positions_BxT)

    def __call__(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, cache=None, inputs_embeds_BxTxD=None):
        """Returns logits [B, T, V] in fp32, or (logits, new_cache) when `cache` is given.

        `cache` is a dict from `init_cache`: k/v [L, B, S, K, E], segment_ids [B, S], index (the slot
        where these T tokens go), with a sliding window or ALiBi positions [B, S] of the cached keys,
        with a prefix mask prefix [B, S], and the family's own entries (TokenLayout.cache_state).
        `inputs_embeds_BxTxD` replaces the token lookup (prompt tuning).
        Segment id 0 is padding; keys of layers.SHARED_SEGMENT are visible to every segment (a soft prompt).
        """
        cfg = self.config
        b, t = tokens_BxT.shape
        if segment_ids_BxT is None:
            segment_ids_BxT = jnp.ones((b, t), jnp.int32)
        layout = self.token_layout(tokens_BxT, positions_BxT, segment_ids_BxT, cache)
        positions_BxT = layout.position_BxT
        x_BxTxD = self.embed_tokens(tokens_BxT) if inputs_embeds_BxTxD is None else inputs_embeds_BxTxD
        x_BxTxD = x_BxTxD.astype(cfg.compute_dtype)
        if cfg.positions == "glm_learned":
            x_BxTxD = x_BxTxD + self.position_embed(positions_BxT) + self.block_position_embed(layout.block_BxT)
        x_BxTxD = constrain(x_BxTxD, ("batch", "seq", "act_embed"))
        rope = rope_sections(cfg, layout)
        needs_kv_positions = cfg.sliding_window is not None or cfg.alibi
        prefix_BxT = layout.prefix_BxT if cfg.mask == "prefix" else None

        if cache is None:
            slots_T = jnp.arange(t)
            mask = attention_mask(segment_ids_BxT, segment_ids_BxT, slots_T, slots_T, prefix_BxT)
            kv_positions_BxS, kv_xs, index = positions_BxT, None, None
        else:
            index = cache["index"]
            kv_segments_BxS = jax.lax.dynamic_update_slice_in_dim(cache["segment_ids"], segment_ids_BxT, index, 1)
            kv_prefix_BxS = (None if prefix_BxT is None else
                             jax.lax.dynamic_update_slice_in_dim(cache["prefix"], prefix_BxT, index, 1))
            mask = attention_mask(segment_ids_BxT, kv_segments_BxS, index + jnp.arange(t),
                                  jnp.arange(kv_segments_BxS.shape[1]), kv_prefix_BxS)
            kv_xs = (cache["k"], cache["v"])
            if needs_kv_positions:  # the window and ALiBi need the positions of the cached keys
                kv_positions_BxS = jax.lax.dynamic_update_slice_in_dim(cache["positions"], positions_BxT, index, 1)
        if cfg.sliding_window is not None:
            mask = mask & sliding_window_mask(positions_BxT, kv_positions_BxS, cfg.sliding_window)
        alibi = (alibi_slopes(cfg.num_heads), key_distance(positions_BxT, kv_positions_BxS)) if cfg.alibi else None
        # the only caller passing SHARED_SEGMENT keys (prompt tuning's soft prompt) passes inputs_embeds
        kernel = "xla" if cache is not None else attention_kernels.choose(cfg, t, inputs_embeds_BxTxD is not None)
        query_blocks = attention_kernels.xla_query_blocks(cfg, t) if cache is None and kernel == "xla" else 1
        attend = attention_function(cfg, kernel, mask, alibi, segment_ids_BxT, prefix_BxT, query_blocks)

        graphdef, layer_state = nnx.split(self.layers)

        def body(x_BxTxD, xs):
            state, kv = xs
            x_BxTxD, kv = nnx.merge(graphdef, state)(x_BxTxD, rope, attend, kv, index)
            return x_BxTxD, kv

        if cfg.remat != "none":
            body = jax.checkpoint(body, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=False)
        x_BxTxD, new_kv = run_layers(body, x_BxTxD, (layer_state, kv_xs), attention_kernels.target_platform())

        logits = output_head(self, self.final_norm(x_BxTxD))  # hidden states under head.hidden_states_only
        if cache is None:
            return logits
        new_cache = dict(k=new_kv[0], v=new_kv[1], segment_ids=kv_segments_BxS, index=index + t,
                         **(layout.cache_state or {}))
        if needs_kv_positions:
            new_cache["positions"] = kv_positions_BxS
        if kv_prefix_BxS is not None:
            new_cache["prefix"] = kv_prefix_BxS
        return logits, new_cache


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype=None) -> dict:
    shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    dtype = dtype or cfg.compute_dtype
    cache = dict(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype),
                 segment_ids=jnp.zeros((batch, max_len), jnp.int32), index=jnp.zeros((), jnp.int32))
    if cfg.sliding_window is not None or cfg.alibi:  # token positions of the cached keys
        cache["positions"] = jnp.zeros((batch, max_len), jnp.int32)
    if cfg.mask == "prefix":  # which cached keys are prefix (Part A)
        cache["prefix"] = jnp.zeros((batch, max_len), bool)
    return cache
