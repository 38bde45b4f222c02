"""A prompt-tuned model's soft prompt <-> a PEFT prompt-tuning directory that the `peft` library loads
onto the transformers model of the same base (PromptTuningConfig, task CAUSAL_LM).

PEFT keeps the prompt as one tensor `prompt_embeddings` [num_virtual_tokens, hidden] and prepends it
to the token embeddings exactly as peft/prompt_tuning.py does (positions 0..P-1, the text after it).
"""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.checkpoint.atomic_dir import replacing_dir
from medjax.checkpoint.hf_io import read_json_object, write_json, write_safetensors
from medjax.checkpoint.safetensors_shards import export_dtype
from medjax.peft.adapter_io import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_weights, open_adapter_config
from medjax.peft.config import PeftSettings
from medjax.peft.prompt_tuning import add_soft_prompt, is_prompt_tuned

PROMPT_WEIGHT = "prompt_embeddings"


def export_prompt(model, directory: str, dtype: str | None = None) -> None:
    """Writes the soft prompt of `model` as a PEFT prompt-tuning directory."""
    if not is_prompt_tuned(model):
        raise ValueError("PEFT prompt export: the model has no soft prompt (peft method is not 'prompt')")
    cfg = model.config
    out_dtype = export_dtype(dtype)
    prompt = np.asarray(model.soft_prompt[...])
    with replacing_dir(directory) as tmp:  # the whole directory or nothing (checkpoint/atomic_dir.py)
        write_safetensors(os.path.join(tmp, ADAPTER_WEIGHTS), {PROMPT_WEIGHT: prompt.astype(out_dtype or prompt.dtype)})
        write_json(os.path.join(tmp, ADAPTER_CONFIG), {
            "peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": int(prompt.shape[0]),
            "token_dim": cfg.hidden_size, "num_transformer_submodules": 1, "num_attention_heads": cfg.num_heads,
            "num_layers": cfg.num_layers, "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None,
            "tokenizer_name_or_path": None, "inference_mode": True, "base_model_name_or_path": None})


def is_prompt_adapter(directory: str) -> bool:
    """Whether PEFT `directory` holds a prompt-tuning adapter (rather than LoRA)."""
    path = os.path.join(directory, ADAPTER_CONFIG)
    if not os.path.exists(path):
        return False
    return read_json_object(path).get("peft_type") == "PROMPT_TUNING"


def read_prompt_config(directory: str, hidden_size: int) -> dict:
    _, ac, need = open_adapter_config(directory)
    need(ac.get("peft_type") == "PROMPT_TUNING", "peft_type", "expected PROMPT_TUNING")
    need(ac.get("task_type") == "CAUSAL_LM", "task_type", "only CAUSAL_LM prompts are supported")
    need(isinstance(ac.get("num_virtual_tokens"), int) and ac["num_virtual_tokens"] > 0, "num_virtual_tokens",
         "expected a positive integer")
    need(ac.get("num_transformer_submodules", 1) == 1, "num_transformer_submodules",
         "a decoder-only model has one")
    need(ac.get("token_dim", hidden_size) == hidden_size, "token_dim", f"the base model's hidden size is {hidden_size}")
    return ac


def import_prompt(base_model, directory: str, seed: int = 0):
    """(`base_model` prepending the soft prompt of PEFT `directory`, its PeftSettings)."""
    ac = read_prompt_config(directory, base_model.config.hidden_size)
    n = ac["num_virtual_tokens"]
    store = adapter_weights(directory)
    if PROMPT_WEIGHT not in store.keys():
        raise KeyError(f"peft:{directory}: the adapter weights lack {PROMPT_WEIGHT!r}")
    prompt = np.asarray(store.get(PROMPT_WEIGHT), np.float32)
    if prompt.shape != (n, base_model.config.hidden_size):
        raise ValueError(f"peft:{directory}: {PROMPT_WEIGHT} has shape {prompt.shape}, expected "
                         f"{(n, base_model.config.hidden_size)} (num_virtual_tokens, hidden size)")
    model = add_soft_prompt(base_model, n, rngs=nnx.Rngs(seed))
    model.soft_prompt.set_value(jnp.asarray(prompt, model.soft_prompt.dtype))
    return model, PeftSettings(method="prompt", num_virtual_tokens=n)
