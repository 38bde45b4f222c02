"""Prompt tuning (Lester et al. 2021; Med-PaLM's instruction prompt tuning): `num_virtual_tokens`
trainable vectors prepended to every row; only they train.

The soft prompt takes positions 0..P-1 and the row's first segment id, and the real tokens move P
positions on (as transformers + peft do). In a packed row only the first document sees the prompt,
so prompt-tuning runs should keep one document per row.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class PromptParam(nnx.Param):
    """A soft-prompt vector: the only kind of variable a prompt-tuning run trains."""


class PromptTunedLM(nnx.Module):
    def __init__(self, backbone, num_virtual_tokens: int, *, rngs: nnx.Rngs):
        self.backbone = backbone
        # start from the embeddings of random vocabulary rows, so the prompt has the scale of real tokens
        ids = jax.random.randint(rngs.params(), (num_virtual_tokens,), 0, backbone.config.vocab_size)
        init = backbone.embed_tokens(ids[None])[0].astype(backbone.embed.embedding.dtype)
        self.prompt = PromptParam(init, axes=("prompt", "embed"))
        self.prompt_enabled = True

    @property
    def config(self):
        return self.backbone.config

    def __call__(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, cache=None, inputs_embeds_BxTxD=None):
        if not self.prompt_enabled:  # reference = base (see lora.adapters_disabled)
            return self.backbone(tokens_BxT, positions_BxT, segment_ids_BxT, cache, inputs_embeds_BxTxD)
        if cache is not None:
            raise NotImplementedError("prompt tuning: KV-cache decoding is not supported; export the backbone "
                                      "or decode without a cache")
        b, t = tokens_BxT.shape
        p = self.prompt.shape[0]
        if segment_ids_BxT is None:
            segment_ids_BxT = jnp.ones((b, t), jnp.int32)
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        embeds = self.backbone.embed_tokens(tokens_BxT) if inputs_embeds_BxTxD is None else inputs_embeds_BxTxD
        prompt_BxPxD = jnp.broadcast_to(self.prompt[...].astype(embeds.dtype), (b, p, embeds.shape[-1]))
        embeds = jnp.concatenate([prompt_BxPxD, embeds], axis=1)
        segments = jnp.concatenate([jnp.broadcast_to(segment_ids_BxT[:, :1], (b, p)), segment_ids_BxT], axis=1)
        positions = jnp.concatenate([jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (b, p)),
                                     positions_BxT + p], axis=1)
        tokens = jnp.concatenate([jnp.zeros((b, p), tokens_BxT.dtype), tokens_BxT], axis=1)
        logits = self.backbone(tokens, positions, segments, inputs_embeds_BxTxD=embeds)
        return logits[:, p:]
