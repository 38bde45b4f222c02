"""Every GLM parameter carries logical axes the sharding rules know, and the LoRA roles are where
the PEFT code looks for them (attn q/k/v/o, mlp gate/up/down). Abstract models only: no compiles."""
from __future__ import annotations

import pytest
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model
from medjax.models.layers import Linear
from medjax.parallel.mesh import make_mesh, state_shardings
from tests.glm_configs import GLM_CONFIGS

CONFIGS = GLM_CONFIGS


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
