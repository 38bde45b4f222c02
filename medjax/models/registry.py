"""Which family module handles which transformers `model_type` (and which ModelConfig.family).

A family module provides: MODEL_TYPES, config_from_hf(hf, source), config_to_hf(cfg),
import_params(store, cfg, shapes, dtype, source), export_params(params, cfg), build(cfg, rngs).
"""
from __future__ import annotations

import importlib

# ModelConfig.family -> module path
FAMILY_MODULES = {
    "llama": "medjax.models.llama",
    "glm": "medjax.models.glm",  # also reads THUDM's original ChatGLM2/3 and GLM-4 layout
    "glm4": "medjax.models.glm",
    "glm_v1": "medjax.models.glm_v1",  # ChatGLM-6B and GLM-10B
}


def family_module(family: str):
    if family not in FAMILY_MODULES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[family])


def module_for_model_type(model_type: str, source: str = "config.json"):
    for family in FAMILY_MODULES:
        module = family_module(family)
        if model_type in module.MODEL_TYPES:
            return module
    known = sorted(t for f in FAMILY_MODULES for t in family_module(f).MODEL_TYPES)
    raise ValueError(f"{source}: unknown model_type {model_type!r}; supported: {known}")
