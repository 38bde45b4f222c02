"""Tiny random transformers LLaMA models written to disk, shared by tests (no hub access)."""
from __future__ import annotations

import os
import shutil

LLAMA2_TOKENIZER = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tokenizers", "llama2",
                                "tokenizer.model")

TINY = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def randomize_(model, seed: int, std: float = 0.3):
    """Every parameter random (norm weights and biases too), so no mapping mistake can hide."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            # 1-D tensors (norm scales, biases) centred on 1 so activations keep a sane scale
            p.copy_(torch.randn(p.shape, generator=gen) * std + (1.0 if p.ndim == 1 else 0.0))
    return model


def make_hf_llama(directory: str, seed: int = 0, tokenizer: bool = False, torch_dtype=None, max_shard_size=None,
                  **overrides):
    """Writes a random LlamaForCausalLM (eager attention) to `directory`; returns the torch model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**{**TINY, **overrides})
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = randomize_(LlamaForCausalLM(cfg), seed).eval()
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(directory, **kwargs)
    if tokenizer:
        save_llama2_tokenizer(directory)
    return model


def save_llama2_tokenizer(directory: str):
    from transformers import LlamaTokenizer

    os.makedirs(directory, exist_ok=True)
    shutil.copy(LLAMA2_TOKENIZER, os.path.join(directory, "tokenizer.model"))
    tok = LlamaTokenizer.from_pretrained(directory)
    tok.save_pretrained(directory)
    return tok


def torch_logits(model, ids):
    import numpy as np
    import torch

    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids))).logits.float().numpy()
