"""The LM head as a step of its own: final-normalised hidden states -> fp32 logits.

Both model classes end with `output_head(self, x)`. Inside `hidden_states_only()` that returns the
normalised hidden states [B, T, D] instead of logits, so callers apply `head_logits` to only the
positions they need (evaluation) or to chunks of tokens (train/chunked_loss.py), and the [B, T, V]
logits never exist at once. A context rather than a call argument, so that classes overriding
__call__ (prompt tuning) pass it through unchanged. Enter it inside the traced function.
"""
from __future__ import annotations

import contextlib
import contextvars

import jax.numpy as jnp

from medjax.parallel.rules import constrain

_hidden_only: contextvars.ContextVar = contextvars.ContextVar("medjax_hidden_states_only", default=False)


@contextlib.contextmanager
def hidden_states_only():
    """Model calls inside return normalised hidden states [B, T, D] (compute dtype), not logits."""
    token = _hidden_only.set(True)
    try:
        yield
    finally:
        _hidden_only.reset(token)


def head_module(model):
    """The module holding the head's weights: the embedding table when tied, else `lm_head` (either
    may carry a LoRA adapter or a quantised base)."""
    return model.embed if model.config.tie_embeddings else model.lm_head


def apply_head(module, tied: bool, x_BxTxD):
    """fp32 logits [B, T, V] of `head_module(model)`."""
    return module.attend(x_BxTxD) if tied else module(x_BxTxD).astype(jnp.float32)


def head_logits(model, x_BxTxD):
    return apply_head(head_module(model), model.config.tie_embeddings, x_BxTxD)


def output_head(model, x_BxTxD):
    """The end of a model's forward pass: logits, or the hidden states inside `hidden_states_only()`."""
    if _hidden_only.get():
        return constrain(x_BxTxD, ("batch", "seq", "act_embed"))
    return constrain(head_logits(model, x_BxTxD), ("batch", "seq", "act_vocab"))
