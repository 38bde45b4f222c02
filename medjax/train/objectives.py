"""Training objectives. Each returns (loss, weight, metrics) for one micro-batch.

`weight` is how much the micro-batch counts when micro-batches are combined (labelled tokens for
language modelling, pairs for preference losses), so gradient accumulation gives the same loss as
one big batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from medjax.peft.lora import dropout_rng
from medjax.train.preference import preference_loss, segment_logps
from medjax.train.reference import reference_logps


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


def forward(model, batch, rng=None):
    """Logits of a packed batch; `rng` (the training step's key) switches LoRA dropout on."""
    with dropout_rng(rng):
        return model(batch["tokens"], batch["positions"], batch["segment_ids"])


def lm_objective(model, batch, extras):
    """Token-mean cross-entropy over tokens whose loss_mask is 1 (CP and IFT alike)."""
    nll_BxT = token_cross_entropy(forward(model, batch, extras.get("rng")), batch["targets"])
    mask_BxT = batch["loss_mask"].astype(jnp.float32)
    count = jnp.sum(mask_BxT)
    loss = jnp.sum(nll_BxT * mask_BxT) / jnp.maximum(count, 1.0)
    return loss, count, {"loss": loss}


def preference_objective(model, batch, extras):
    """DPO / IPO / ORPO / SimPO on rows holding one pair each; extras["preference"] holds the
    settings, and the reference (medjax/train/reference.py) comes from extras or the batch."""
    logp_Bx2, count_Bx2 = segment_logps(forward(model, batch, extras.get("rng")), batch)
    ref_logp_Bx2 = reference_logps(model, batch, extras)
    return preference_loss(extras["preference"], logp_Bx2, count_Bx2, ref_logp_Bx2)


OBJECTIVES = {"lm": lm_objective, "preference": preference_objective}


def get_objective(name: str):
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]
