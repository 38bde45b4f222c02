"""Analytic FLOPs of one training step: what MFU divides by, attention included.

XLA's cost_analysis() cannot be used for this: it leaves out the scanned layer loop (PERFORMANCE.md).
Per token, N = the weights that enter matmuls: every decoder-layer Linear kernel and the LM head (the
tied embedding table counts as the head; embedding and position lookups, norms and biases are not
matmuls). A matmul costs 2 FLOPs per weight per token forward, and backward 2 for the activation
gradient plus 2 for the weight gradient, the latter only for weights that train:
  full fine-tuning                   6 N
  LoRA / QLoRA / prompt tuning       4 N for the frozen weights (forward, and the activation gradients
                                     that carry the loss back to the adapters or the soft prompt: the
                                     whole stack, since layer 0 or the embedding has one) + 6 per
                                     adapter weight (LoRA A and B; a soft prompt is no matmul)
  attention (scores, weighted values) forward 4 T H E per token per layer over the whole T x T block,
                                     as the model computes it (masked entries included), backward 2x.
QLoRA's dequantisation is elementwise, not model FLOPs. Prompt tuning runs T + P tokens per row.
Preference stages add the reference model's forward (reference copy or base): 2 N + attention forward.
Recomputation (remat, the chunked LM head) is not model FLOPs (MFU, not HFU): `recompute_flops` gives
it separately, for a time estimate.
"""
from __future__ import annotations

import dataclasses

from medjax.models.config import ModelConfig
from medjax.train.chunked_loss import resolve_chunk


def layer_matmul_weights(cfg: ModelConfig) -> int:
    """Matmul weights of one decoder layer (q, k, v, o and the MLP)."""
    d, f, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    if cfg.family == "glm_v1":  # full multi-head attention, a plain up / down MLP (GELU)
        return 4 * d * cfg.num_heads * hd + 2 * d * f
    return d * hd * (2 * cfg.num_heads + 2 * cfg.num_kv_heads) + 3 * d * f  # GQA, SwiGLU (gate, up, down)


def matmul_weights(cfg: ModelConfig) -> int:
    """N above: decoder layers and the LM head."""
    return cfg.num_layers * layer_matmul_weights(cfg) + cfg.vocab_size * cfg.hidden_size


def attention_forward_flops_per_token(cfg: ModelConfig, keys: int) -> int:
    """Q K^T and P V over `keys` keys, every layer."""
    return 4 * keys * cfg.num_heads * cfg.head_dim * cfg.num_layers


@dataclasses.dataclass(frozen=True)
class StepFlops:
    model: float  # per optimizer step, all devices
    recompute: float  # extra work the step does by design (remat, chunked head), not in `model`
    tokens: int  # positions the model runs per step (B x (T + soft prompt))


def step_flops(cfg: ModelConfig, batch_size: int, seq_len: int, *, full: bool, adapter_weights: int = 0,
               prompt_tokens: int = 0, reference_forward: bool = False, grad_accum: int = 1,
               loss_chunk: int | None = None, batch_shards: int = 1) -> StepFlops:
    """FLOPs of one step over `batch_size` rows of `seq_len` tokens. full: every weight trains; else the
    backbone is frozen and `adapter_weights` (LoRA A + B parameters) train. `batch_shards`: the devices
    the rows are split over (loss_chunk counts one device's tokens)."""
    length = seq_len + prompt_tokens
    tokens = batch_size * length
    n = matmul_weights(cfg)
    attn_fwd = attention_forward_flops_per_token(cfg, length)
    per_token = (6 * n if full else 4 * n + 6 * adapter_weights) + 3 * attn_fwd
    if reference_forward:
        per_token += 2 * n + attn_fwd
    layers_fwd = 2 * cfg.num_layers * layer_matmul_weights(cfg) + attn_fwd
    recompute = {"full": layers_fwd, "dots_no_batch": attn_fwd}.get(cfg.remat, 0)  # "dots" keeps every matmul
    device_tokens = tokens // grad_accum // batch_shards
    if resolve_chunk(loss_chunk, cfg.vocab_size, device_tokens) < device_tokens:  # head under jax.checkpoint
        recompute += 2 * cfg.vocab_size * cfg.hidden_size
    return StepFlops(model=float(per_token * tokens), recompute=float(recompute * tokens), tokens=tokens)
