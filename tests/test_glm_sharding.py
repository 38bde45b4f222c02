"""Every GLM parameter carries logical axes the sharding rules know, and the LoRA roles are where
the PEFT code looks for them (attn q/k/v/o, mlp gate/up/down). Abstract models only: no compiles."""
from __future__ import annotations

import pytest
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model
from medjax.models import glm, glm_v1
from medjax.models.layers import Linear
from medjax.parallel.mesh import make_mesh, state_shardings

HF = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, head_dim=16)
V1 = dict(vocab_size=64, hidden_size=32, num_layers=2, num_attention_heads=4, max_sequence_length=32,
          mask_token_id=50, gmask_token_id=51)
CONFIGS = {
    "glm": lambda: glm.config_from_hf({"model_type": "glm", **HF}),
    "glm4": lambda: glm.config_from_hf({"model_type": "glm4", **HF}),
    "chatglm6b": lambda: glm_v1.config_from_hf({"model_type": "chatglm", "inner_hidden_size": 48,
                                                "bos_token_id": 54, "eos_token_id": 55, **V1}),
    "glm10b": lambda: glm_v1.config_from_hf({"model_type": "glm", "block_position_encoding": True,
                                             "sop_token_id": 54, "eop_token_id": 55, **V1}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_parameter_has_a_sharding_rule(name):
    model = abstract_model(CONFIGS[name]())
    _, state = nnx.split(model)
    state_shardings(state, make_mesh())  # raises on an axis name without a rule


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_lora_roles_are_linear_layers(name):
    model = abstract_model(CONFIGS[name]())
    roles = {"q", "k", "v", "o", "up", "down"} | ({"gate"} if name in ("glm", "glm4") else set())
    found = {path[-1] for path, node in nnx.iter_graph(model)
             if isinstance(node, Linear) and len(path) > 1 and path[-2] in ("attn", "mlp")}
    assert found == roles
