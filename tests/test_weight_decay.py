"""Weight decay shrinks matrices and never norm scales or biases, on real stacked models of every family
(where a norm scale is [L, D] and a bias [L, out]), under full training and under PEFT."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.peft.config import PeftSettings
from medjax.peft.setup import abstract_peft_model, trainable_filter
from medjax.train.config import train_section
from medjax.train.optimizer import decay_mask, make_optimizer
from medjax.train.step import init_state, make_train_step
from tests.glm_configs import GLM_CONFIGS

LR, WD = 0.1, 0.5
SHRUNK = 1.0 - LR * WD  # a decayed weight of 1 after one AdamW step whose gradient is zero


def _train_config():
    t = train_section()
    t.lr, t.warmup_steps, t.schedule, t.weight_decay = LR, 0, "constant", WD
    return t


def _ones(model, trainable):
    """(graphdef, trainable state with every value 1, the rest): a zero bias would hide a decay. `model`
    may be abstract (shapes only): the values are replaced anyway."""
    graphdef, params, frozen = nnx.split(model, trainable, ...)
    return graphdef, jax.tree.map(lambda x: jnp.ones(x.shape, x.dtype), params), frozen


def _values_after_zero_gradient_step(model, trainable=nnx.Param) -> dict:
    _, params, _ = _ones(model, trainable)
    optimizer, _ = make_optimizer(_train_config(), 10)

    @jax.jit  # one compile instead of one per eager op and shape
    def step(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        updates, _ = optimizer.update(zeros, optimizer.init(params), params)
        return optax.apply_updates(params, updates)

    return _by_path(step(params))


def _by_path(state) -> dict:
    return {"/".join(map(str, path)): np.asarray(var.get_value()) for path, var in nnx.to_flat_state(state)}


def _assert_only_matrices_shrank(values: dict):
    kept = {p for p, v in values.items() if np.all(v == 1.0)}
    shrunk = {p for p, v in values.items() if np.allclose(v, SHRUNK)}
    assert kept | shrunk == set(values), "every weight either kept or shrank by lr x weight_decay"
    expected_kept = {p for p in values if p.rsplit("/", 1)[-1] in ("scale", "bias")}
    assert kept == expected_kept
    # the stacked ones are the case the old `ndim >= 2` rule got wrong
    assert any(values[p].ndim == 2 for p in kept)


LLAMA = ModelConfig(vocab_size=64, attention_bias=True, **{**preset("test"), "tie_embeddings": False})
CONFIGS = {"llama": lambda: LLAMA, **{name: GLM_CONFIGS[name] for name in ("glm4", "chatglm6b", "glm10b")}}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_full_training_decays_matrices_not_norms_or_biases(family):
    values = _values_after_zero_gradient_step(abstract_model(CONFIGS[family]()))
    _assert_only_matrices_shrank(values)
    if family == "glm10b":  # learned position tables are embeddings: decayed
        assert np.allclose(values["position_embed/embedding"], SHRUNK)


def test_lora_adapters_and_the_soft_prompt_are_decayed():
    lora = PeftSettings(method="lora", targets="all,lm_head,embed")
    values = _values_after_zero_gradient_step(abstract_peft_model(LLAMA, lora), trainable_filter(lora))
    assert any(p.endswith("lora_a") for p in values) and any(p.endswith("lora_b") for p in values)
    assert all(np.allclose(v, SHRUNK) for v in values.values())
    prompt = PeftSettings(method="prompt", num_virtual_tokens=3)
    values = _values_after_zero_gradient_step(abstract_peft_model(LLAMA, prompt), trainable_filter(prompt))
    assert list(values) == ["soft_prompt"] and np.allclose(values["soft_prompt"], SHRUNK)


def _zero_loss(model, batch, extras):
    """A loss whose gradient is zero for every parameter (and cheap to compile: no forward pass)."""
    del batch, extras
    return 0.0 * model.final_norm.scale[...].sum(), jnp.ones(()), {}


def test_the_train_step_keeps_stacked_norms_and_biases():
    """The real path: make_train_step's jitted value_and_grad over the trainable nnx.State, then the mask."""
    graphdef, params, frozen = _ones(abstract_model(LLAMA), nnx.Param)
    optimizer, schedule = make_optimizer(_train_config(), 10)
    step = jax.jit(make_train_step(graphdef, _zero_loss, optimizer, schedule))
    state, _ = step(init_state(params, optimizer, 0), frozen, {}, {})
    _assert_only_matrices_shrank(_by_path(state["params"]))


def test_a_plain_array_tree_is_refused_by_name():
    with pytest.raises(TypeError, match="kernel is a plain ndarray"):
        decay_mask({"kernel": np.zeros((3, 4))})
