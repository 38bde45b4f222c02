"""Prompt tuning (Lester et al. 2021; Med-PaLM's instruction prompt tuning): `num_virtual_tokens`
trainable vectors prepended to every row; only they train.

The backbone gains a `soft_prompt` variable and a subclass whose __call__ prepends it, rather than a
wrapper module, so every backbone variable keeps its path (`layers/...`), which the sharding rules
and checkpoints rely on. The soft prompt takes positions 0..P-1 and the row's first segment id, and
the real tokens move P positions on (as transformers + peft do). In a packed row only the first
document sees the prompt, so prompt-tuning runs should keep one document per row.
"""
from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
from flax import nnx


class PromptParam(nnx.Param):
    """A soft-prompt vector: the only kind of variable a prompt-tuning run trains."""


def _prompted_call(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, cache=None,
                   inputs_embeds_BxTxD=None):
    """The backbone's call with `soft_prompt` prepended (unless `prompt_enabled` is False)."""
    backbone_call = type(self).prompt_base_class.__call__
    if not self.prompt_enabled:  # reference = base (see lora.adapters_disabled)
        return backbone_call(self, tokens_BxT, positions_BxT, segment_ids_BxT, cache, inputs_embeds_BxTxD)
    if cache is not None:
        raise NotImplementedError("prompt tuning: KV-cache decoding is not supported yet; decode the "
                                  "exported backbone or score with logits()")
    b, t = tokens_BxT.shape
    p = self.soft_prompt.shape[0]
    if segment_ids_BxT is None:
        segment_ids_BxT = jnp.ones((b, t), jnp.int32)
    if positions_BxT is None:
        positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    embeds = self.embed_tokens(tokens_BxT) if inputs_embeds_BxTxD is None else inputs_embeds_BxTxD
    prompt_BxPxD = jnp.broadcast_to(self.soft_prompt[...].astype(embeds.dtype), (b, p, embeds.shape[-1]))
    embeds = jnp.concatenate([prompt_BxPxD, embeds], axis=1)
    segments = jnp.concatenate([jnp.broadcast_to(segment_ids_BxT[:, :1], (b, p)), segment_ids_BxT], axis=1)
    positions = jnp.concatenate([jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (b, p)), positions_BxT + p],
                                axis=1)
    tokens = jnp.concatenate([jnp.zeros((b, p), tokens_BxT.dtype), tokens_BxT], axis=1)
    return backbone_call(self, tokens, positions, segments, inputs_embeds_BxTxD=embeds)[:, p:]


@functools.cache
def _prompted_class(backbone_cls):
    # one base only and no new slots: the instance layout stays the backbone's, so __class__ can switch
    return types.new_class(f"PromptTuned{backbone_cls.__name__}", (backbone_cls,), exec_body=lambda ns: ns.update(
        __slots__=(), __call__=_prompted_call, prompt_base_class=backbone_cls))


def is_prompt_tuned(model) -> bool:
    return getattr(type(model), "prompt_base_class", None) is not None


def add_soft_prompt(model, num_virtual_tokens: int, *, rngs: nnx.Rngs):
    """In place: `model` prepends `num_virtual_tokens` trainable vectors. Returns it."""
    # start from the embeddings of random vocabulary rows, so the prompt has the scale of real tokens
    ids = jax.random.randint(rngs.params(), (1, num_virtual_tokens), 0, model.config.vocab_size)
    init = model.embed_tokens(ids)[0].astype(model.embed.embedding.dtype)
    model.__class__ = _prompted_class(type(model))
    model.soft_prompt = PromptParam(init, axes=("prompt", "embed"))
    model.prompt_enabled = True
    return model


def without_soft_prompt(model):
    """A copy of a prompt-tuned model as its plain backbone class (the soft prompt dropped)."""
    model = nnx.clone(model)
    del model.soft_prompt, model.prompt_enabled
    model.__class__ = type(model).prompt_base_class
    return model
