"""Training objectives. Each returns (loss, weight, metrics) for one micro-batch.

`weight` is how much the micro-batch counts when micro-batches are combined (labelled tokens for
language modelling, pairs for preference losses), so gradient accumulation gives the same loss as
one big batch. `loss_chunk` (train.loss_chunk) is how many of a device's tokens the LM head handles at a time
(train/chunked_loss.py: None picks by vocabulary size, 0 means all at once).
"""
from __future__ import annotations

import functools

import jax.numpy as jnp

from medjax.train.chunked_loss import token_nll
from medjax.train.preference import preference_loss, segment_sums
from medjax.train.reference import reference_logps


def lm_objective(model, batch, extras, loss_chunk=None):
    """Token-mean cross-entropy over tokens whose loss_mask is 1 (CP and IFT alike)."""
    nll_BxT = token_nll(model, batch, extras.get("rng"), loss_chunk)
    mask_BxT = batch["loss_mask"].astype(jnp.float32)
    count = jnp.sum(mask_BxT)
    loss = jnp.sum(nll_BxT * mask_BxT) / jnp.maximum(count, 1.0)
    return loss, count, {"loss": loss}


def preference_objective(model, batch, extras, loss_chunk=None):
    """DPO / IPO / ORPO / SimPO on rows holding one pair each; extras["preference"] holds the
    settings, and the reference (medjax/train/reference.py) comes from extras or the batch."""
    logp_Bx2, count_Bx2 = segment_sums(-token_nll(model, batch, extras.get("rng"), loss_chunk), batch)
    ref_logp_Bx2 = reference_logps(model, batch, extras, loss_chunk)
    return preference_loss(extras["preference"], logp_Bx2, count_Bx2, ref_logp_Bx2)


OBJECTIVES = {"lm": lm_objective, "preference": preference_objective}


def get_objective(name: str, loss_chunk: int | None = None):
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}")
    if loss_chunk is None:
        return OBJECTIVES[name]
    return functools.partial(OBJECTIVES[name], loss_chunk=loss_chunk)
