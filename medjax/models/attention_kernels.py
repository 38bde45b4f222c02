"""Which attention kernel a no-cache (training / evaluation) call runs, and the kernels other than
layers.dot_product_attention (the XLA path, the reference): Pallas splash attention for TPUs and
cuDNN flash attention for GPUs. `model.attention` (ModelConfig.attention) asks for one:

  xla     layers.dot_product_attention over a dense [B, 1, T, S] mask: every feature, every backend.
  splash  jax.experimental.pallas.ops.tpu.splash_attention: causal, packed segments (segment ids), GQA,
          Mistral's sliding window, GLM v1's prefix mask (two calls merged by logsumexp, own VJP).
          Native on TPU, Pallas interpret mode elsewhere (slow: for tests). Not ALiBi, nor a soft
          prompt's SHARED_SEGMENT keys: auto picks xla there.
  cudnn   jax.nn.dot_product_attention(implementation="cudnn") on a GPU, bf16 / fp16 only.
  auto    splash on TPU, cudnn on GPU, where the call's mask and shapes allow; xla otherwise.

An explicit choice that cannot run a model feature is an error naming the feature and `model.attention`.
The KV-cache decoding path always runs xla (its mask covers the cache, not T new tokens).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu import splash_attention as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash_kernel_lib
from jax.sharding import PartitionSpec

from medjax.parallel.rules import RULES, active_mesh, constrain, mesh_shards

QUERY_BLOCK_ROWS = 64  # the xla kernel's smallest query block on CPU (xla_query_blocks)
# Shorter calls stay dense: the blocks change logits in the 7th digit (summation order), and the
# embedded recipes' few-step CI runs (seq 200) are tuned on the dense path's numerics
QUERY_BLOCKS_FROM = 256
_SPLASH_BLOCKS = (512, 256, 128)  # the kernel's tiles are multiples of 128 lanes; larger is faster on TPU
_PAD_SEGMENT = np.iinfo(np.int32).min  # slots splash_attention appends: a segment no data row uses
_NO_KEY = _PAD_SEGMENT + 1  # the segment id of keys outside one of the prefix mask's two key sets


def target_platform() -> str:
    """The platform the program is compiled for: the active mesh's devices (a TPU topology compiled
    from a CPU host by medjax.plan), else JAX's default backend."""
    mesh = active_mesh()
    return mesh.devices.flat[0].platform if mesh is not None else jax.default_backend()


def splash_blocker(cfg, shared_keys: bool) -> str | None:
    """What in this call splash cannot express, or None."""
    if cfg.alibi:
        return "ALiBi position biases (Baichuan-13B)"
    if cfg.mask == "prefix" and cfg.sliding_window is not None:
        return "GLM v1's prefix mask with a sliding window"
    if shared_keys:
        return "prompt tuning's soft prompt (keys of SHARED_SEGMENT, visible to every segment)"
    return None


def cudnn_blocker(cfg, seq_len: int) -> str | None:
    """What in this call cuDNN flash attention cannot run (jax.nn.dot_product_attention's limits), or None."""
    if cfg.alibi:
        return "ALiBi position biases (Baichuan-13B)"
    if cfg.compute_dtype not in (jnp.bfloat16, jnp.float16):
        return f"compute dtype {cfg.dtype} (cuDNN flash attention runs bfloat16 / float16; set model.dtype)"
    if cfg.head_dim % 8 or cfg.head_dim > 128:
        return f"head_dim {cfg.head_dim} (cuDNN needs a multiple of 8, at most 128)"
    if seq_len % 2:  # a masked (biased) training call needs even lengths
        return f"sequence length {seq_len} (cuDNN with a mask needs it even)"
    return None


def choose(cfg, seq_len: int, shared_keys: bool, platform: str | None = None) -> str:
    """xla | splash | cudnn for a no-cache call of T=seq_len tokens. `shared_keys`: the row may hold
    SHARED_SEGMENT keys (a soft prompt). Raises ValueError naming model.attention when an explicit
    choice cannot run this call."""
    requested = cfg.attention
    platform = platform or target_platform()
    if requested == "xla":
        return "xla"
    if requested == "splash":
        blocker = splash_blocker(cfg, shared_keys)
        if blocker:
            raise ValueError(f"model.attention='splash' cannot express {blocker}: use model.attention=auto or xla")
        return "splash"
    if requested == "cudnn":
        if platform != "gpu":
            raise ValueError(f"model.attention='cudnn' needs a GPU, and this program runs on {platform}: "
                             "use model.attention=auto or xla")
        blocker = cudnn_blocker(cfg, seq_len)
        if blocker:
            raise ValueError(f"model.attention='cudnn' cannot run {blocker}: use model.attention=auto or xla")
        return "cudnn"
    if platform == "tpu" and splash_blocker(cfg, shared_keys) is None:
        return "splash"
    if platform == "gpu" and cudnn_blocker(cfg, seq_len) is None:
        return "cudnn"
    return "xla"


def xla_query_blocks(cfg, seq_len: int, platform: str | None = None) -> int:
    """Query row blocks for the xla kernel of a causal no-cache call (layers.causal_query_blocks_attention).
    XLA:CPU computes the dense scores of every key, the masked half too, and its attention backward is
    slow on the [B, H, T, T] buffers: on the bench50m shapes (T 512, 8 heads of 64) eight blocks run the
    attention's forward + backward 2.4x faster. Up to 8 blocks of at least QUERY_BLOCK_ROWS rows, on CPU
    from QUERY_BLOCKS_FROM tokens; one block elsewhere (TPU and GPU run their own kernels) and for GLM
    v1's prefix mask (Part A keys are seen by earlier rows)."""
    if (platform or target_platform()) != "cpu" or cfg.mask != "causal" or seq_len < QUERY_BLOCKS_FROM:
        return 1
    return min(8, seq_len // QUERY_BLOCK_ROWS)


# -- splash --------------------------------------------------------------------------------------

def _splash_kernel(num_heads: int, seq_len: int, interpret: bool, *, window: int | None = None,
                   full: bool = False, save_residuals: bool = False):
    """The kernel for [H, T, E] queries of one row (keys may have fewer heads: GQA): causal over slots,
    with Mistral's window on slots when given, or `full` (no slot order); segment ids mask the rest.
    Built in the trace that uses it: its mask tables become that program's constants (a kernel cached
    across traces would leak their tracers)."""
    block = next(b for b in _SPLASH_BLOCKS if seq_len % b == 0)
    shape = (seq_len, seq_len)
    if full:
        head_mask = splash.FullMask(shape)
    elif window is None:
        head_mask = splash.CausalMask(shape)
    else:  # LocalMask (window - 1 back, none ahead) is causal: kv >= q - (window - 1) <=> kv > q - window
        head_mask = splash.LocalMask(shape, window_size=(window - 1, 0), offset=0)
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                              block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
    return splash.make_splash_mha(splash.MultiHeadMask([head_mask] * num_heads), block_sizes=sizes,
                                  head_shards=1, q_seq_shards=1, save_residuals=save_residuals, interpret=interpret)


def _splash_rows(q_BxTxHxE, k_BxSxKxE, v_BxSxKxE, segment_BxT, prefix_BxT=None, *, window, interpret):
    """Splash over the rows of one device's block (every head of its own, all T slots)."""
    scale = jnp.asarray(1 / math.sqrt(q_BxTxHxE.shape[-1]), q_BxTxHxE.dtype)  # the kernel does not scale
    if prefix_BxT is None:
        kernel = _splash_kernel(q_BxTxHxE.shape[2], q_BxTxHxE.shape[1], interpret, window=window)

        def attend(q_HxTxE, k_KxSxE, v_KxSxE, segment_T):
            return kernel(q_HxTxE, k_KxSxE, v_KxSxE, segment_ids=splash.SegmentIds(segment_T, segment_T))
        rows = (segment_BxT,)
    else:
        def attend(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T):
            return _prefix_attention(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret)
        rows = (segment_BxT, prefix_BxT.astype(bool))
    heads_first = functools.partial(jnp.swapaxes, axis1=0, axis2=1)

    def row(q_TxHxE, k_SxKxE, v_SxKxE, *row_T):
        return heads_first(attend(heads_first(q_TxHxE * scale), heads_first(k_SxKxE), heads_first(v_SxKxE), *row_T))

    return jax.vmap(row)(q_BxTxHxE, k_BxSxKxE, v_BxSxKxE, *rows)


# -- GLM v1's prefix mask: two splash calls merged by logsumexp -------------------------------------

def _prefix_parts(num_heads: int, seq_len: int, segment_T, prefix_T, interpret: bool):
    """[(kernel, segment ids)] of the two disjoint key sets of a query: the Part A keys of its segment
    (any slot) and the other keys of its segment up to its own slot. Each query sees itself in one."""
    part_a = _splash_kernel(num_heads, seq_len, interpret, full=True, save_residuals=True)
    part_b = _splash_kernel(num_heads, seq_len, interpret, save_residuals=True)
    return [(part_a, splash.SegmentIds(segment_T, jnp.where(prefix_T, segment_T, _NO_KEY))),
            (part_b, splash.SegmentIds(segment_T, jnp.where(prefix_T, _NO_KEY, segment_T)))]


def _prefix_forward(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret):
    """Softmax over the union of two disjoint key sets = each set's output weighted by exp(its
    logsumexp - the union's): exact. A query with an empty set gets its logsumexp near the kernel's
    mask value, so weight 0."""
    outs, lses = zip(*[(o.astype(jnp.float32), lse) for kernel, ids in
                       _prefix_parts(q_HxTxE.shape[0], q_HxTxE.shape[1], segment_T, prefix_T, interpret)
                       for o, (lse,) in [kernel(q_HxTxE, k_KxSxE, v_KxSxE, segment_ids=ids)]])
    lse_HxT = jnp.logaddexp(*lses)
    out_HxTxE = sum(jnp.exp(lse - lse_HxT)[..., None] * o for o, lse in zip(outs, lses))
    return out_HxTxE.astype(q_HxTxE.dtype), lse_HxT


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _prefix_attention(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret):
    return _prefix_forward(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret)[0]


def _prefix_attention_fwd(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret):
    out_HxTxE, lse_HxT = _prefix_forward(q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, interpret)
    return out_HxTxE, (q_HxTxE, k_KxSxE, v_KxSxE, segment_T, prefix_T, out_HxTxE, lse_HxT)


def _prefix_attention_bwd(interpret, residuals, d_out_HxTxE):
    """The splash backward of each key set with the union's output and logsumexp as residuals: its
    probabilities exp(s - lse) are then the union's on that set, and D = rowsum(dO * out) the union's,
    so the two sets' dq, dk, dv add up to the union's. (splash's own VJP refuses save_residuals.)"""
    q, k, v, segment_T, prefix_T, out, lse = residuals
    grads = []
    for kernel, ids in _prefix_parts(q.shape[0], q.shape[1], segment_T, prefix_T, interpret):
        infos = [info if info is None or info.partial_mask_blocks is None else info._replace(
            partial_mask_blocks=info.partial_mask_blocks.reshape(-1, *info.partial_mask_blocks.shape[-2:]))
            for info in (kernel.dq_mask_info, kernel.dkv_mask_info)]  # as splash's own call lays them out
        grads.append(splash_kernel_lib._splash_attention_bwd(
            **kernel.kwargs, res=(q, k, v, ids, None, out, lse, *infos), do=d_out_HxTxE)[3:6])
    dq, dk, dv = (a + b for a, b in zip(*grads))
    return dq, dk, dv, None, None


_prefix_attention.defvjp(_prefix_attention_fwd, _prefix_attention_bwd)


def _mesh_axes(mesh, logical: str, size: int):
    """The mesh axes the logical axis maps to (parallel/rules.py), or None when they do not divide
    `size` (that dimension is then replicated inside the kernel's shard_map)."""
    axes = RULES[logical]
    return axes if axes and size % mesh_shards(logical, mesh) == 0 else None


def splash_attention(q_BxTxHxE, k_BxTxKxE, v_BxTxKxE, segment_BxT, window: int | None = None, prefix_BxT=None):
    """Causal self-attention within segments (0 = padding, as any other id) by the splash kernel, on
    slots; `window`: Mistral's sliding window, on slots, which equals the window on positions wherever
    positions advance by one a slot within a segment (packed documents restart at 0); `prefix_BxT`:
    GLM v1's Part A, keys every query of their segment sees (not with a window). Under an active
    mesh the kernel runs in a shard_map (a pallas_call cannot be auto-partitioned): rows split over
    the batch axes, heads over the tensor axis."""
    if prefix_BxT is not None and window is not None:
        raise ValueError("splash_attention: a prefix mask with a sliding window is not supported")
    t = q_BxTxHxE.shape[1]
    pad = -t % 128  # the kernel tiles T by multiples of 128; appended slots are later than every real
    if pad:         # one (causal) and of their own segment, so no real query sees them
        q_BxTxHxE, k_BxTxKxE, v_BxTxKxE = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0)))
                                           for x in (q_BxTxHxE, k_BxTxKxE, v_BxTxKxE))
        segment_BxT = jnp.pad(segment_BxT, ((0, 0), (0, pad)), constant_values=_PAD_SEGMENT)
        prefix_BxT = None if prefix_BxT is None else jnp.pad(prefix_BxT, ((0, 0), (0, pad)))
    interpret = target_platform() != "tpu"
    rows = [q_BxTxHxE, k_BxTxKxE, v_BxTxKxE, segment_BxT] + ([] if prefix_BxT is None else [prefix_BxT])
    run = functools.partial(_splash_rows, window=window, interpret=interpret)
    mesh = active_mesh()
    if mesh is not None and mesh.size > 1:
        b = q_BxTxHxE.shape[0]
        kv_heads = k_BxTxKxE.shape[2]
        batch = _mesh_axes(mesh, "batch", b)
        # q heads are grouped per kv head (GQA): splitting the kv heads splits whole groups
        heads = _mesh_axes(mesh, "kv_heads", kv_heads)
        qkv_spec = PartitionSpec(batch, None, heads, None)
        row_spec = PartitionSpec(batch, None)
        run = jax.shard_map(run, mesh=mesh, in_specs=(qkv_spec,) * 3 + (row_spec,) * (len(rows) - 3),
                            out_specs=qkv_spec, check_vma=False)
    out_BxTxHxE = run(*rows)[:, :t]
    return constrain(out_BxTxHxE, ("batch", "seq", "q_heads", "head_dim"))


# -- cudnn ---------------------------------------------------------------------------------------

def cudnn_attention(q_BxTxHxE, k_BxSxKxE, v_BxSxKxE, mask_Bx1xTxS, causal: bool):
    """cuDNN flash attention over the dense mask (segments, shared keys, window, prefix); `causal` lets
    it skip the blocks above the diagonal (False for a prefix mask, whose Part A keys lie ahead)."""
    out_BxTxHxE = jax.nn.dot_product_attention(q_BxTxHxE, k_BxSxKxE, v_BxSxKxE, mask=mask_Bx1xTxS,
                                               is_causal=causal, implementation="cudnn")
    return constrain(out_BxTxHxE, ("batch", "seq", "q_heads", "head_dim"))
