"""ModelConfig.num_params equals the parameter count of the model each GLM family (and LLaMA, whose
layout the general formula follows) actually builds. Abstract models only: no compiles."""
from __future__ import annotations

import math

import jax
import pytest

from medjax.checkpoint.hf_model import param_shapes
from medjax.models import glm
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from tests.glm_configs import GLM_CONFIGS, HF

CONFIGS = {
    **GLM_CONFIGS,
    "llama": lambda: ModelConfig(vocab_size=64, **preset("test")),
    "llama_untied": lambda: ModelConfig(vocab_size=64, **{**preset("test"), "tie_embeddings": False}),
    "glm_tied": lambda: glm.config_from_hf({"model_type": "glm", "tie_word_embeddings": True, **HF}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_num_params_counts_the_built_model(name):
    cfg = CONFIGS[name]()
    shapes = jax.tree.leaves(param_shapes(cfg), is_leaf=lambda x: isinstance(x, tuple))
    assert cfg.num_params() == sum(math.prod(s) for s in shapes)
