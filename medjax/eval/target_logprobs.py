"""Log-probabilities of chosen next tokens for a batch of rows: the one model call of loglik.

Scoring needs, at a few positions of each row, the log-probability of a few candidate tokens (the
continuation's next token; several when options share a row). Only those positions go through
the LM head and are normalised (models/head.py), and when `lm.model` is a Flax module (the folder
contract `model(tokens_BxT) -> logits`) the model, the gather, the head and the log-softmax run
inside one compiled function, so that only [B, P, K] numbers leave the device instead of
[B, T, vocab] logits. Any other object with `lm.logits` (e.g. a scripted test model) gets the same
computation in numpy.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

# (tokens_BxT, positions_BxP, candidates_BxPxK) -> (log-probs [B, P, K], argmax ids [B, P])
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def make_forward(lm) -> Forward:
    from flax import nnx

    model = getattr(lm, "model", None)
    if isinstance(model, nnx.Module):
        graphdef, state = nnx.split(model)
        return lambda tokens, positions, candidates: tuple(
            np.asarray(x) for x in _jitted()(graphdef, state, tokens, positions, candidates))
    return lambda tokens, positions, candidates: _from_logits(
        np.asarray(lm.logits(tokens)), positions, candidates)


@functools.lru_cache(maxsize=1)
def _jitted():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from medjax.models.head import head_logits, hidden_states_only

    @functools.partial(jax.jit, static_argnames=("graphdef",))
    def gather(graphdef, state, tokens_BxT, positions_BxP, candidates_BxPxK):
        model = nnx.merge(graphdef, state)
        with hidden_states_only():  # the head runs on the P scored positions only, not on all T
            hidden_BxTxD = model(tokens_BxT)
        hidden_BxPxD = jnp.take_along_axis(hidden_BxTxD, positions_BxP[..., None], axis=1)
        logits_BxPxV = head_logits(model, hidden_BxPxD).astype(jnp.float32)
        normaliser_BxP = jax.nn.logsumexp(logits_BxPxV, axis=-1)
        picked_BxPxK = jnp.take_along_axis(logits_BxPxV, candidates_BxPxK, axis=-1)
        return picked_BxPxK - normaliser_BxP[..., None], logits_BxPxV.argmax(-1)

    return gather


def _from_logits(logits_BxTxV, positions_BxP, candidates_BxPxK):
    # float64 for the normaliser: a sum over 32k+ exponentials loses digits in float32.
    logits_BxPxV = np.take_along_axis(logits_BxTxV, positions_BxP[..., None], axis=1).astype(np.float64)
    top = logits_BxPxV.max(-1, keepdims=True)
    normaliser_BxP = (top + np.log(np.exp(logits_BxPxV - top).sum(-1, keepdims=True)))[..., 0]
    picked_BxPxK = np.take_along_axis(logits_BxPxV, candidates_BxPxK, axis=-1)
    return picked_BxPxK - normaliser_BxP[..., None], logits_BxPxV.argmax(-1)
