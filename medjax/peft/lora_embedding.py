"""LoRA on the token embedding table, as peft's `lora.Embedding`:

  embed(t) = table[t] + scale * A[t] @ B,  A [vocab, r] (logical axes vocab, lora_rank), B [r, embed].

peft stores A^T as `lora_embedding_A` [r, vocab] and B^T as `lora_embedding_B` [hidden, r] and
initialises A = 0, B ~ N(0, 1) (the reverse of its Linear init); we start the same way. There is no
dropout on token ids (peft has none either), whatever `peft.dropout` says.

Tied output head (logits = x @ table^T): the adapter changes the lookup only; the head keeps reading
the base table, as transformers + peft do (their lm_head shares the base layer's weight, not the
adapter). So that merging keeps the function exactly, the merged model's head still reads the saved
base table, and an exported merged backbone gets an untied `lm_head` holding the base table (peft's
own merge_and_unload would instead change the tied head too, i.e. a different model).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from medjax.models.layers import Embed, Linear
from medjax.peft.lora import LoRAModule, LoRAParam, lora_scale


class LoRAEmbed(LoRAModule):
    def __init__(self, base: Embed, *, rank: int, alpha: float, rslora: bool = False, rngs: nnx.Rngs):
        self.base = base
        vocab, features = base.embedding.shape
        vocab_axis, embed_axis = base.embedding.get_metadata()["axes"]
        dtype = base.embedding.dtype
        self.lora_a = LoRAParam(jnp.zeros((vocab, rank), dtype), axes=(vocab_axis, "lora_rank"))
        self.lora_b = LoRAParam(jax.random.normal(rngs.params(), (rank, features), dtype),
                                axes=("lora_rank", embed_axis))
        self.rank, self.alpha, self.rslora = rank, alpha, rslora
        self.scale = lora_scale(alpha, rank, rslora)
        self.enabled = True
        self.merged = False

    def base_weight(self) -> nnx.Variable:
        return self.base.embedding

    def delta(self):
        """scale * A @ B, [vocab, embed] in fp32."""
        return self.scale * (self.lora_a[...].astype(jnp.float32) @ self.lora_b[...].astype(jnp.float32))

    def plain(self, weight) -> Embed:
        out = nnx.eval_shape(lambda: Embed(*weight.shape, dtype=self.base.dtype, param_dtype=weight.dtype,
                                           rngs=nnx.Rngs(0)))
        out.embedding = nnx.Param(weight, axes=self.base.embedding.get_metadata()["axes"])
        return out

    def replace_with_plain(self, model, path: tuple, merge: bool) -> None:
        if merge and model.config.tie_embeddings:  # the head keeps the base table: untie it
            table = self.original_weight()
            head = nnx.eval_shape(lambda: Linear(table.shape[1], table.shape[0], axes=("embed", "vocab"),
                                                 dtype=self.base.dtype, fp32_output=True, rngs=nnx.Rngs(0)))
            head.kernel = nnx.Param(table.T, axes=("embed", "vocab"))
            model.lm_head = head
            model.config = model.config.replace(tie_embeddings=False)
        super().replace_with_plain(model, path, merge)

    def __call__(self, tokens_BxT):
        y = self.base(tokens_BxT)
        if not self.enabled or self.merged:
            return y
        dtype = self.base.dtype
        h = jnp.take(self.lora_a[...], tokens_BxT, axis=0).astype(dtype)
        up = jnp.einsum("btr,rd->btd", h, self.lora_b[...].astype(dtype))
        return (y + (self.scale * up).astype(y.dtype)).astype(y.dtype)

    def attend(self, x_BxTxD):
        """The tied head, on the base table (merged or not: see the module docstring)."""
        table = self.original_weight()
        return jnp.einsum("btd,vd->btv", x_BxTxD, table.astype(self.base.dtype), preferred_element_type=jnp.float32)
