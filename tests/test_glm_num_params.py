"""ModelConfig.num_params equals the parameter count of the model each GLM family (and LLaMA, whose
layout the general formula follows) actually builds. Abstract models only: no compiles."""
from __future__ import annotations

import math

import jax
import pytest

from medjax.checkpoint.hf_model import param_shapes
from medjax.models import glm, glm_v1
from medjax.models.config import ModelConfig
from medjax.models.presets import preset

HF = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, head_dim=16)
V1 = dict(vocab_size=64, hidden_size=32, num_layers=3, num_attention_heads=4, max_sequence_length=24,
          mask_token_id=50, gmask_token_id=51)
CONFIGS = {
    "llama": lambda: ModelConfig(vocab_size=64, **preset("test")),
    "llama_untied": lambda: ModelConfig(vocab_size=64, **{**preset("test"), "tie_embeddings": False}),
    "glm": lambda: glm.config_from_hf({"model_type": "glm", **HF}),
    "glm_tied": lambda: glm.config_from_hf({"model_type": "glm", "tie_word_embeddings": True, **HF}),
    "glm4": lambda: glm.config_from_hf({"model_type": "glm4", **HF}),
    "chatglm6b": lambda: glm_v1.config_from_hf({"model_type": "chatglm", "inner_hidden_size": 48,
                                                "bos_token_id": 54, "eos_token_id": 55, **V1}),
    "glm10b": lambda: glm_v1.config_from_hf({"model_type": "glm", "block_position_encoding": True,
                                             "sop_token_id": 54, "eop_token_id": 55, **V1}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_num_params_counts_the_built_model(name):
    cfg = CONFIGS[name]()
    shapes = jax.tree.leaves(param_shapes(cfg), is_leaf=lambda x: isinstance(x, tuple))
    assert cfg.num_params() == sum(math.prod(s) for s in shapes)
