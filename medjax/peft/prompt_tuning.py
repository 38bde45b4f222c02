"""Prompt tuning (Lester et al. 2021; Med-PaLM's instruction prompt tuning): `num_virtual_tokens`
trainable vectors prepended to every sequence; only they train.

The backbone gains a `soft_prompt` variable and a subclass whose __call__ prepends it, rather than a
wrapper module, so every backbone variable keeps its path (`layers/...`), which the sharding rules
and checkpoints rely on. The P prompt vectors sit in front of the row at positions 0..P-1 with the
segment id SHARED_SEGMENT (models/layers.py), which every segment may attend to; each document's
positions (restarting per document) move P on. So every document of a packed row sees the prompt
exactly as if it were alone in its row behind it (as transformers + peft lay out one sequence).

Decoding: `init_cache` allocates P more slots and fills the first P with the prompt's keys and
values (the prompt attends only to itself, so it does not depend on the tokens); every later call,
the prefill included, continues behind it with positions moved P on.

Backbones: the shared decoder (LLaMA, GLM, GLM-4) and GLM v1 (ChatGLM-6B, GLM-10B). For GLM v1 the
prompt is P extra context (Part A) tokens in front of every document, at block position 0: each
document's Part A positions, and so its blanks' and Part B's positions, move P on, block positions
stay (see the models/glm_v1.py docstring). Its explicit [B, 2, T] positions move on in the first row.
"""
from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
from flax import nnx

from medjax.models.decoder import DecoderLM
from medjax.models.glm_v1 import GLMv1LM, positions_from_segments
from medjax.models.layers import SHARED_SEGMENT

BACKBONES = (DecoderLM, GLMv1LM)


class PromptParam(nnx.Param):
    """A soft-prompt vector: the only kind of variable a prompt-tuning run trains."""


def _prompt_inputs(model, batch: int, explicit_2d: bool = False):
    """(placeholder tokens, positions 0..P-1, shared segment ids, embeddings) of the prompt, [B, P(, D)];
    with explicit_2d, GLM v1's [B, 2, P] positions (block position 0)."""
    p = model.soft_prompt.shape[0]
    positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (batch, p))
    if explicit_2d:
        positions = jnp.stack([positions, jnp.zeros_like(positions)], axis=1)
    embeds = jnp.broadcast_to(model.soft_prompt[...].astype(model.config.compute_dtype),
                              (batch, p, model.soft_prompt.shape[1]))
    return (jnp.zeros((batch, p), jnp.int32), positions, jnp.full((batch, p), SHARED_SEGMENT, jnp.int32), embeds)


def _prompted_call(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, cache=None,
                   inputs_embeds_BxTxD=None):
    """The backbone's call with `soft_prompt` prepended (unless `prompt_enabled` is False)."""
    backbone_call = type(self).prompt_base_class.__call__
    if not self.prompt_enabled:  # reference = base (see lora.adapters_disabled)
        return backbone_call(self, tokens_BxT, positions_BxT, segment_ids_BxT, cache, inputs_embeds_BxTxD)
    b, t = tokens_BxT.shape
    p = self.soft_prompt.shape[0]
    if segment_ids_BxT is None:
        segment_ids_BxT = jnp.ones((b, t), jnp.int32)
    if positions_BxT is None:  # the backbone's own default, which GLM v1 restarts per segment
        positions_BxT = (positions_from_segments(segment_ids_BxT) if isinstance(self, GLMv1LM) else
                         jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t)))
    explicit_2d = positions_BxT.ndim == 3  # GLM v1 [B, 2, T]: only the position row moves
    shifted = positions_BxT.at[:, 0].add(p) if explicit_2d else positions_BxT + p
    if cache is not None:  # init_cache already holds the prompt in its first P slots
        return backbone_call(self, tokens_BxT, shifted, segment_ids_BxT, cache, inputs_embeds_BxTxD)
    embeds = self.embed_tokens(tokens_BxT) if inputs_embeds_BxTxD is None else inputs_embeds_BxTxD
    prompt_tokens, prompt_positions, prompt_segments, prompt_embeds = _prompt_inputs(self, b, explicit_2d)
    return backbone_call(self, jnp.concatenate([prompt_tokens.astype(tokens_BxT.dtype), tokens_BxT], axis=1),
                         jnp.concatenate([prompt_positions, shifted], axis=-1),
                         jnp.concatenate([prompt_segments, segment_ids_BxT], axis=1),
                         inputs_embeds_BxTxD=jnp.concatenate([prompt_embeds.astype(embeds.dtype), embeds], axis=1),
                         )[:, p:]


def _prompted_init_cache(self, batch: int, max_len: int) -> dict:
    """A cache P slots longer whose first P slots hold the soft prompt (index P)."""
    base = type(self).prompt_base_class
    if not self.prompt_enabled:
        return base.init_cache(self, batch, max_len)
    cache = base.init_cache(self, batch, max_len + self.soft_prompt.shape[0])
    tokens, positions, segments, embeds = _prompt_inputs(self, batch)
    _, cache = base.__call__(self, tokens, positions, segments, cache, inputs_embeds_BxTxD=embeds)
    return cache


@functools.cache
def _prompted_class(backbone_cls):
    # one base only and no new slots: the instance layout stays the backbone's, so __class__ can switch
    return types.new_class(f"PromptTuned{backbone_cls.__name__}", (backbone_cls,), exec_body=lambda ns: ns.update(
        __slots__=(), __call__=_prompted_call, init_cache=_prompted_init_cache, prompt_base_class=backbone_cls))


def is_prompt_tuned(model) -> bool:
    return getattr(type(model), "prompt_base_class", None) is not None


def add_soft_prompt(model, num_virtual_tokens: int, *, rngs: nnx.Rngs):
    """In place: `model` prepends `num_virtual_tokens` trainable vectors. Returns it."""
    if not isinstance(model, BACKBONES):
        raise ValueError(f"prompt tuning (config.peft.method=prompt): the {model.config.family} backbone "
                         f"{type(model).__name__} is not supported; supported: "
                         f"{', '.join(cls.__name__ for cls in BACKBONES)}, whose attention masks let every packed "
                         "document see the prompt")
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
