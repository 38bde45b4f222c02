"""Building blocks shared by every backbone: Linear, Embed, RMSNorm / LayerNorm, learned position
tables, rotary embeddings (plain and GLM's 2D), attention and its masks.

Array names carry their shapes: B batch, T query length, S key length, D hidden, H query heads,
K key/value heads, G = H // K heads per group, E head dim, V vocab.
Every parameter carries logical axis names (`axes` metadata) that parallel/rules.py maps to a mesh.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.parallel.rules import constrain

_default_init = nnx.initializers.normal(stddev=0.02)


class Linear(nnx.Module):
    """y = x @ kernel (+ bias). kernel is [in, out]; its logical axes name both dimensions."""

    def __init__(self, in_features: int, out_features: int, *, axes: tuple[str, str], use_bias: bool = False,
                 dtype=jnp.float32, param_dtype=jnp.float32, fp32_output: bool = False,
                 normalize_kernel: bool = False, rngs: nnx.Rngs):
        self.in_features, self.out_features = in_features, out_features
        self.dtype = dtype
        self.fp32_output = fp32_output  # the LM head accumulates logits in fp32 even in bf16
        self.normalize_kernel = normalize_kernel  # Baichuan2's NormHead: each output's weights scaled to norm 1
        self.kernel = nnx.Param(_default_init(rngs.params(), (in_features, out_features), param_dtype), axes=axes)
        self.bias = (nnx.Param(jnp.zeros((out_features,), param_dtype), axes=(axes[1],)) if use_bias else None)

    def __call__(self, x):
        # One 2-D matmul over all leading dims: the kernel gradient then contracts a single row axis,
        # where "...i,io->...o" makes XLA:CPU copy the output gradient transposed for every Linear.
        x_MxI = x.reshape(-1, self.in_features).astype(self.dtype)
        kernel_IxO = self.kernel[...]
        if self.normalize_kernel:
            kernel_IxO = l2_normalize_columns(kernel_IxO)
        kernel_IxO = kernel_IxO.astype(self.dtype)
        y_MxO = logits_dot(x_MxI, kernel_IxO) if self.fp32_output else jnp.dot(x_MxI, kernel_IxO)
        y = y_MxO.reshape(*x.shape[:-1], self.out_features)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def logits_dot(x_MxD, kernel, kernel_is_VxD: bool = False):
    """Logits [M, V] accumulated and returned in fp32 whatever the inputs' dtype: x [M, D] against a
    kernel [D, V] (an LM head) or [V, D] (a tied embedding table).

    The backward works in the inputs' dtype: the logits gradient is rounded to it once and both
    gradients come out of their matmuls in it. Autodiff's rule would make the kernel gradient in fp32
    and round it to the kernel's bf16 afterwards, which on a TPU mesh keeps a full fp32 [D, V] buffer
    per chip (llama2-7b, v5e:4x4: 500 MiB where the bf16 one takes 250). In fp32 both are the same."""
    return jnp.einsum("md,vd->mv" if kernel_is_VxD else "md,dv->mv", x_MxD, kernel,
                      preferred_element_type=jnp.float32)


def _logits_dot_fwd(x_MxD, kernel, kernel_is_VxD):
    return logits_dot(x_MxD, kernel, kernel_is_VxD), (x_MxD, kernel)


def _logits_dot_bwd(kernel_is_VxD, residuals, g_MxV):
    x_MxD, kernel = residuals
    g_MxV = g_MxV.astype(kernel.dtype)
    if kernel_is_VxD:
        dx_MxD = jnp.einsum("mv,vd->md", g_MxV, kernel)
        dkernel = jnp.einsum("mv,md->vd", g_MxV, x_MxD.astype(kernel.dtype))
    else:
        dx_MxD = jnp.einsum("mv,dv->md", g_MxV, kernel)
        dkernel = jnp.einsum("md,mv->dv", x_MxD.astype(kernel.dtype), g_MxV)
    return dx_MxD.astype(x_MxD.dtype), dkernel


logits_dot.defvjp(_logits_dot_fwd, _logits_dot_bwd)


def l2_normalize_columns(kernel_IxO, eps: float = 1e-12):
    """Each output column divided by its L2 norm (at least eps), in fp32: torch's F.normalize over
    the rows of an HF [out, in] weight, as Baichuan2's NormHead applies it."""
    k32 = kernel_IxO.astype(jnp.float32)
    norm_O = jnp.sqrt(jnp.sum(jnp.square(k32), axis=0, keepdims=True))
    return (k32 / jnp.maximum(norm_O, eps)).astype(kernel_IxO.dtype)


class Embed(nnx.Module):
    def __init__(self, vocab_size: int, features: int, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.dtype = dtype
        self.embedding = nnx.Param(_default_init(rngs.params(), (vocab_size, features), param_dtype),
                                   axes=("vocab", "embed"))

    def __call__(self, tokens_BxT):
        return jnp.take(self.embedding[...], tokens_BxT, axis=0).astype(self.dtype)

    def attend(self, x_BxTxD):
        """Tied output head: logits against the embedding matrix, accumulated in fp32 (2-D, as in Linear)."""
        b, t, d = x_BxTxD.shape
        logits_MxV = logits_dot(x_BxTxD.reshape(b * t, d).astype(self.dtype), self.embedding[...].astype(self.dtype),
                                kernel_is_VxD=True)
        return logits_MxV.reshape(b, t, -1)


class RMSNorm(nnx.Module):
    def __init__(self, features: int, *, eps: float, dtype=jnp.float32, param_dtype=jnp.float32):
        self.eps, self.dtype = eps, dtype
        self.scale = nnx.Param(jnp.ones((features,), param_dtype), axes=("norm",))

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(self.dtype) * x32.astype(self.dtype)


class LayerNorm(nnx.Module):
    """LayerNorm with a bias (GLM v1), computed in fp32."""

    def __init__(self, features: int, *, eps: float, dtype=jnp.float32, param_dtype=jnp.float32):
        self.eps, self.dtype = eps, dtype
        self.scale = nnx.Param(jnp.ones((features,), param_dtype), axes=("norm",))
        self.bias = nnx.Param(jnp.zeros((features,), param_dtype), axes=("norm",))

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(self.dtype)


class PositionTable(nnx.Module):
    """Learned (block) position embeddings of GLM-10B: rows are positions, never sharded."""

    def __init__(self, rows: int, features: int, *, dtype, param_dtype, rngs: nnx.Rngs):
        self.dtype = dtype
        self.embedding = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), (rows, features), param_dtype),
                                   axes=(None, "embed"))

    def __call__(self, positions_BxT):
        return jnp.take(self.embedding[...], positions_BxT, axis=0, mode="clip").astype(self.dtype)


# -- rotary position embeddings -----------------------------------------------------------------

def rope_inv_freq(rotary_dim: int, theta: float, scaling: dict | None):
    """Inverse frequencies [rotary_dim // 2], with optional linear or llama3 scaling."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, rotary_dim, 2, dtype=jnp.float32) / rotary_dim))
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv_freq / factor
    if kind == "llama3":
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_len = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return jnp.where(medium, smoothed, scaled)
    if kind == "default":
        return inv_freq
    raise ValueError(f"rope_scaling type {kind!r} is not supported (expected linear or llama3)")


def rope_cos_sin(positions_BxT, inv_freq):
    angles_BxTxR = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
    return jnp.cos(angles_BxTxR), jnp.sin(angles_BxTxR)


def apply_rope(x_BxTxNxE, cos_BxTxR, sin_BxTxR, interleaved: bool):
    """Rotates the first 2R features of each head; the rest pass through (partial rotary)."""
    rot = 2 * cos_BxTxR.shape[-1]
    x_rot, x_pass = x_BxTxNxE[..., :rot].astype(jnp.float32), x_BxTxNxE[..., rot:]
    cos, sin = cos_BxTxR[:, :, None, :], sin_BxTxR[:, :, None, :]
    if interleaved:  # pairs (0,1), (2,3), ...
        x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
        out = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).reshape(x_rot.shape)
    else:  # pairs (i, i + R)
        x1, x2 = x_rot[..., : rot // 2], x_rot[..., rot // 2:]
        out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return jnp.concatenate([out.astype(x_BxTxNxE.dtype), x_pass], axis=-1)


def apply_rope_sections(x_BxTxNxE, sections, interleaved: bool):
    """`sections`: one (cos, sin) pair per equal consecutive slice of each head, each applied with
    apply_rope. One section is plain (partial) rotary; GLM's 2D rotary has two (position, block position)."""
    if len(sections) == 1:
        return apply_rope(x_BxTxNxE, *sections[0], interleaved)
    parts = jnp.split(x_BxTxNxE, len(sections), axis=-1)
    return jnp.concatenate([apply_rope(part, cos, sin, interleaved) for part, (cos, sin) in zip(parts, sections)],
                           axis=-1)


def fp16_rope_cos_sin(positions_BxT, dim: int, theta: float):
    """cos/sin [B, T, dim // 2] rounded as ChatGLM-6B builds its table, in fp16 (inv_freq, angles and
    cos/sin), so the published weights see the angles they were trained with."""
    half = jnp.float16
    inv = rope_inv_freq(dim, theta, None).astype(half)
    angles = (positions_BxT.astype(half)[..., None] * inv).astype(half)
    return (jnp.cos(angles.astype(jnp.float32)).astype(half).astype(jnp.float32),
            jnp.sin(angles.astype(jnp.float32)).astype(half).astype(jnp.float32))


# -- attention ----------------------------------------------------------------------------------

# Keys with this segment id are visible to every segment: a soft prompt in front of packed documents
# (peft/prompt_tuning.py) is shared by all of them. Data segment ids are >= 0 (0 = padding).
SHARED_SEGMENT = -1


def attention_mask(q_segment_BxT, kv_segment_BxS, q_slot_T, kv_slot_S, kv_prefix_BxS=None):
    """Causal over slots, and never across segments except into SHARED_SEGMENT keys. With
    `kv_prefix_BxS` (a prefix LM: GLM v1's Part A) those keys are visible to every query of their
    segment, later slots included. Returns bool [B, 1, T, S]."""
    causal_TxS = kv_slot_S[None, :] <= q_slot_T[:, None]
    earlier_BxTxS = causal_TxS[None] if kv_prefix_BxS is None else causal_TxS[None] | kv_prefix_BxS[:, None, :]
    same_BxTxS = q_segment_BxT[:, :, None] == kv_segment_BxS[:, None, :]
    visible_BxTxS = same_BxTxS | (kv_segment_BxS == SHARED_SEGMENT)[:, None, :]
    return (earlier_BxTxS & visible_BxTxS)[:, None]


def positions_from_segments(segment_ids_BxT):
    """Positions that restart at 0 wherever the segment id changes along a row (packed documents each
    start at 0): the model call's default when no positions are given. int32 [B, T]."""
    seg = jnp.asarray(segment_ids_BxT)
    slot = jnp.broadcast_to(jnp.arange(seg.shape[1], dtype=jnp.int32), seg.shape)
    starts = jnp.concatenate([jnp.ones_like(seg[:, :1], bool), seg[:, 1:] != seg[:, :-1]], axis=1)
    return slot - jax.lax.cummax(jnp.where(starts, slot, 0), axis=1)


def sliding_window_mask(q_position_BxT, kv_position_BxS, window: int):
    """Keys less than `window` positions back: transformers' `kv > q - window` (Mistral), on
    positions rather than slots, so a packed document, a left-padded prompt or one behind a soft
    prompt sees the keys it sees alone. AND it with attention_mask. Returns bool [B, 1, T, S]."""
    return (kv_position_BxS[:, None, :] > q_position_BxT[:, :, None] - window)[:, None]


def alibi_slopes(num_heads: int) -> np.ndarray:
    """ALiBi's per-head slopes [H] (Press et al., as Baichuan-13B computes them): for n a power of
    two, r, r^2, ..., r^n with r = 2^(-8/n); otherwise the slopes of the largest power of two p below
    n, then every other slope of 2p (the 1st, 3rd, ...) for the remaining n - p heads."""
    def geometric(n):
        r = 2.0 ** (-8.0 / n)
        return [r ** (i + 1) for i in range(n)]
    p = 2 ** math.floor(math.log2(num_heads))
    return np.asarray(geometric(p) + geometric(2 * p)[0::2][:num_heads - p], np.float32)


def key_distance(q_position_BxT, kv_position_BxS):
    """kv - q position, fp32 [B, T, S]: ALiBi's bias is slope * this (<= 0 for the keys a causal
    query sees). Baichuan adds slope * key index; per query row the two differ by a constant, which
    the softmax drops. Like the rope it replaces it reads the positions the caller passes, not slots."""
    return (kv_position_BxS[:, None, :] - q_position_BxT[:, :, None]).astype(jnp.float32)


def dot_product_attention(q_BxTxHxE, k_BxSxKxE, v_BxSxKxE, mask_Bx1xTxS, alibi=None):
    """Grouped-query attention, softmax in fp32. `alibi`: (slopes [H], key_distance [B, T, S]) adds
    slope * distance to the scaled scores (ALiBi; the model then has no rope)."""
    b, t, h, e = q_BxTxHxE.shape
    kv_heads = k_BxSxKxE.shape[2]
    # scaling q ([B, T, H, E]) is cheaper than scaling the scores ([B, H, T, S]) in both passes
    q_BxTxKxGxE = (q_BxTxHxE / jnp.asarray(math.sqrt(e), q_BxTxHxE.dtype)).reshape(b, t, kv_heads, h // kv_heads, e)
    scores_BxKxGxTxS = jnp.einsum("btkge,bske->bkgts", q_BxTxKxGxE, k_BxSxKxE, preferred_element_type=jnp.float32)
    if alibi is not None:
        slopes_H, distance_BxTxS = alibi
        slopes_KxG = jnp.asarray(slopes_H, jnp.float32).reshape(kv_heads, h // kv_heads)
        scores_BxKxGxTxS = scores_BxKxGxTxS + slopes_KxG[None, :, :, None, None] * distance_BxTxS[:, None, None]
    scores_BxKxGxTxS = jnp.where(mask_Bx1xTxS[:, :, None], scores_BxKxGxTxS, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores_BxKxGxTxS, axis=-1).astype(v_BxSxKxE.dtype)
    out_BxTxKxGxE = jnp.einsum("bkgts,bske->btkge", probs, v_BxSxKxE)
    return constrain(out_BxTxKxGxE.reshape(b, t, h, e), ("batch", "seq", "q_heads", "head_dim"))


def causal_query_blocks_attention(q_BxTxHxE, k_BxTxKxE, v_BxTxKxE, mask_Bx1xTxT, alibi=None, blocks: int = 1):
    """dot_product_attention of a causal self-attention call, its queries cut into `blocks` row blocks,
    each against only the keys up to its last row: the keys after it are masked for every row of the
    block, so the result is the dense one's (up to summation order) at about (blocks + 1) / (2 blocks)
    of the work. Keys every row sees (a soft prompt's SHARED_SEGMENT) come first, so no block drops one."""
    t = q_BxTxHxE.shape[1]
    bounds = [round(i * t / blocks) for i in range(blocks + 1)]
    outs = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        block_alibi = None if alibi is None else (alibi[0], alibi[1][:, start:end, :end])
        outs.append(dot_product_attention(q_BxTxHxE[:, start:end], k_BxTxKxE[:, :end], v_BxTxKxE[:, :end],
                                          mask_Bx1xTxT[:, :, start:end, :end], block_alibi))
    return jnp.concatenate(outs, axis=1)
