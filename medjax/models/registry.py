"""Which family module handles which transformers `model_type` (and which ModelConfig.family).

A family module provides: MODEL_TYPES, config_from_hf(hf, source), config_to_hf(cfg),
import_params(store, cfg, shapes, dtype, source), export_params(params, cfg), build(cfg, rngs).
"""
from __future__ import annotations

import importlib

# ModelConfig.family -> module path
FAMILY_MODULES = {
    "llama": "medjax.models.llama",
    "mistral": "medjax.models.mistral",  # LLaMA plus sliding-window attention
    "qwen2": "medjax.models.qwen2",  # LLaMA plus q/k/v biases
    "glm": "medjax.models.glm",  # also reads THUDM's original ChatGLM2/3 and GLM-4 layout
    "glm4": "medjax.models.glm",
    "glm_v1": "medjax.models.glm_v1",  # ChatGLM-6B and GLM-10B
    "baichuan": "medjax.models.baichuan",  # Baichuan 1/2 7B (rope) and 13B (ALiBi), W_pack layout
}


def family_module(family: str):
    if family not in FAMILY_MODULES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[family])


def module_for_model_type(model_type: str, source: str = "config.json"):
    if not isinstance(model_type, str):
        raise ValueError(f"{source}: model_type={model_type!r} is not a string")
    for family in FAMILY_MODULES:
        module = family_module(family)
        if model_type in module.MODEL_TYPES:
            return module
    known = sorted(t for f in FAMILY_MODULES for t in family_module(f).MODEL_TYPES)
    raise ValueError(f"{source}: unknown model_type {model_type!r}; supported: {known}")
