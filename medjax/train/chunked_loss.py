"""Per-token cross-entropy from the model's hidden states, the LM head applied a chunk of tokens at a time.

With GLM-4's 151k or LLaMA-3's 128k vocabulary the [B, T, V] fp32 logits (and their gradient) are the
largest temporaries of a training step. `token_nll` runs the model up to its final norm
(models/head.py), then maps over chunks of about `chunk` tokens per device (every row, a slice of
positions): head matmul, log-sum-exp and target logit per chunk under `jax.checkpoint`, so the backward
recomputes each chunk's logits instead of keeping them, and only [chunk, V] exists at a time on a device.
The chunk counts a device's tokens, not the global batch's: a global count made the chunks as many
times smaller as the batch has shards (llama2-7b on v5e:4x4, loss_chunk 1024: 64 chunks of 64 tokens
a device instead of 4 of 1024), each one more head matmul too small to fill the chip and one more
accumulation of the head's gradient. Any head works (tied table, lm_head, LoRA'd or quantised):
the head module is split once and merged inside the loop.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.models.head import apply_head, head_module, hidden_states_only
from medjax.parallel.rules import mesh_shards
from medjax.peft.lora import dropout_rng

# Vocabularies up to this size keep the one-pass head over the whole batch (fastest on CPU, and their
# logits are small); larger ones are chunked by DEFAULT_CHUNK tokens unless the caller says otherwise.
CHUNK_ABOVE_VOCAB = 65536
DEFAULT_CHUNK = 1024


@jax.custom_vjp
def token_cross_entropy(logits_BxTxV, targets_BxT):
    """Per-token negative log-likelihood in fp32.

    The hand-written backward (softmax - one_hot in one pass over [B, T, V]) replaces autodiff's,
    which scatters the target gradient into a fresh zero [B, T, V] buffer and adds it separately:
    on CPU that is two extra passes over the 32k-vocab logits each step.
    """
    return _cross_entropy_fwd(logits_BxTxV, targets_BxT)[0]


def _cross_entropy_fwd(logits_BxTxV, targets_BxT):
    logits = logits_BxTxV.astype(jnp.float32)
    logz_BxT = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits, targets_BxT[..., None], axis=-1)[..., 0]
    return logz_BxT - target_logit_BxT, (logits_BxTxV, targets_BxT, logz_BxT)


def _cross_entropy_bwd(residuals, g_BxT):
    logits_BxTxV, targets_BxT, logz_BxT = residuals
    vocab_V = jnp.arange(logits_BxTxV.shape[-1], dtype=targets_BxT.dtype)
    probs = jnp.exp(logits_BxTxV.astype(jnp.float32) - logz_BxT[..., None])
    one_hot = (vocab_V == targets_BxT[..., None]).astype(jnp.float32)
    grad = (g_BxT[..., None] * (probs - one_hot)).astype(logits_BxTxV.dtype)
    return grad, np.zeros(targets_BxT.shape, jax.dtypes.float0)


token_cross_entropy.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def resolve_chunk(chunk: int | None, vocab_size: int, num_tokens: int) -> int:
    """Tokens per head chunk out of a device's `num_tokens` (all of them = one pass): `chunk` when given
    (0 = no chunking), else the vocabulary rule above."""
    if chunk is None:
        chunk = DEFAULT_CHUNK if vocab_size > CHUNK_ABOVE_VOCAB else 0
    if chunk < 0:
        raise ValueError(f"train.loss_chunk={chunk}: expected 0 (no chunking) or a positive number of tokens")
    return num_tokens if chunk == 0 else min(chunk, num_tokens)


def token_nll(model, batch, rng=None, chunk: int | None = None):
    """Negative log-likelihood of batch["targets"] per token [B, T] (fp32), no mask applied.

    `rng` (the training step's key) switches LoRA dropout on; `chunk`: see `resolve_chunk`.
    """
    tokens_BxT = batch["tokens"]
    b, t = tokens_BxT.shape
    rows = local_rows(b)
    chunk = resolve_chunk(chunk, model.config.vocab_size, rows * t)
    if chunk == rows * t:  # one pass: the model's own head
        with dropout_rng(rng):
            logits_BxTxV = model(tokens_BxT, batch["positions"], batch["segment_ids"])
        return token_cross_entropy(logits_BxTxV, batch["targets"])
    with dropout_rng(rng), hidden_states_only():
        hidden_BxTxD = model(tokens_BxT, batch["positions"], batch["segment_ids"])
    return chunked_nll(model, hidden_BxTxD, batch["targets"], chunk, rng)


def local_rows(batch_rows: int, mesh=None) -> int:
    """Rows of the batch each device holds under `mesh` (default: the active one), all of them when
    the batch axes do not divide it (the batch is then replicated)."""
    shards = mesh_shards("batch", mesh)
    return batch_rows // shards if batch_rows % shards == 0 else batch_rows


def chunked_nll(model, hidden_BxTxD, targets_BxT, chunk: int, rng=None):
    """token_cross_entropy(head(hidden), targets), about `chunk` tokens per device at a time (see the
    module docstring). Chunks cut along T and keep whole rows on the batch axis, so a data-parallel
    batch stays sharded as it is; the last chunk is padded with zero rows whose losses are dropped."""
    b, t, d = hidden_BxTxD.shape
    width = max(1, chunk // local_rows(b))  # positions per chunk
    n = -(-t // width)
    pad = n * width - t
    hidden_NxBxCxD = jnp.pad(hidden_BxTxD, ((0, 0), (0, pad), (0, 0))).reshape(b, n, width, d).swapaxes(0, 1)
    targets_NxBxC = jnp.pad(targets_BxT, ((0, 0), (0, pad))).reshape(b, n, width).swapaxes(0, 1)
    tied = model.config.tie_embeddings
    graphdef, head_state = nnx.split(head_module(model))

    @jax.checkpoint  # keep nothing of a chunk for the backward: its logits are recomputed there
    def one_chunk(state, x_BxCxD, targets_BxC, index):
        # a LoRA'd head draws a different dropout mask for every chunk
        with dropout_rng(None if rng is None else jax.random.fold_in(rng, index)):
            logits_BxCxV = apply_head(nnx.merge(graphdef, state), tied, x_BxCxD)
        return token_cross_entropy(logits_BxCxV, targets_BxC)

    def body(carry, xs):
        return carry, one_chunk(head_state, *xs)

    _, nll_NxBxC = jax.lax.scan(body, None, (hidden_NxBxCxD, targets_NxBxC, jnp.arange(n)))
    return nll_NxBxC.swapaxes(0, 1).reshape(b, n * width)[:, :t]
