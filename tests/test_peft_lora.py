"""LoRA / QLoRA / prompt tuning on a tiny model: what trains, merge/unmerge, reference = base,
checkpoint round trip and bad input."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.models.registry import family_module
from medjax.peft.config import PeftSettings
from medjax.peft.lora import (LoRALinear, adapters_disabled, dropout_rng, lora_modules, lora_scale,
                              merge_adapters, unmerge_adapters)
from medjax.peft.quantized import QuantizedLinear, QuantizedWeight
from medjax.peft.setup import apply_peft, backbone_of, trainable_filter
from peft_checks import train_steps

CFG = ModelConfig(family="llama", vocab_size=128, **preset("test"))  # 2 layers, hidden 32, mlp 64
RANK = 4


_BUILT = {}


def build(cfg=CFG):
    """A fresh copy of the tiny model (initialised once per config: eager init is slow on 2 cores)."""
    if cfg not in _BUILT:
        _BUILT[cfg] = family_module("llama").build(cfg, nnx.Rngs(0))
    return nnx.clone(_BUILT[cfg])


def peft_model(method, cfg=CFG, **kw):
    settings = PeftSettings(method=method, rank=RANK, alpha=8.0, dropout=0.0, targets="all", **kw)
    return apply_peft(build(cfg), settings), settings


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens)


def logits(model, tokens):
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef, state, tokens))


def randomise_b(model, seed=1, std=0.1):
    for i, (_, m) in enumerate(lora_modules(model)):
        m.lora_b.set_value(std * jax.random.normal(jax.random.PRNGKey(seed + i), m.lora_b.shape))


TOKENS = jnp.asarray(np.random.default_rng(0).integers(3, 128, size=(2, 16)), jnp.int32)
BATCH = {"tokens": TOKENS, "targets": jnp.roll(TOKENS, -1, axis=1), "loss_mask": jnp.ones((2, 16), jnp.float32),
         "segment_ids": jnp.ones((2, 16), jnp.int32), "positions": jnp.broadcast_to(jnp.arange(16), (2, 16))}


def count(tree):
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def base_logits():
    return logits(build(), TOKENS)


@pytest.fixture(scope="module")
def lora_trained():
    model, settings = peft_model("lora")
    base_state = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.split(model, trainable_filter(settings), ...)[2]))
    state, frozen, losses = train_steps(model, trainable_filter(settings), BATCH, 4)
    return model, settings, base_state, state, frozen, losses


def test_only_adapters_train_and_the_base_is_bitwise_unchanged(lora_trained):
    model, settings, base_before, state, frozen, losses = lora_trained
    d, f, kv, L = CFG.hidden_size, CFG.intermediate_size, CFG.num_kv_heads * CFG.head_dim, CFG.num_layers
    # q, o: d->d; k, v: d->kv; gate, up: d->f; down: f->d; each A [in, r] + B [r, out], per layer
    expected = L * RANK * ((d + d) * 2 + (d + kv) * 2 + (d + f) * 3)
    assert count(state["params"]) == expected
    # AdamW keeps mu and nu per adapter parameter; the rest are step counters
    opt_elements = count(state["opt_state"])
    assert 2 * expected <= opt_elements <= 2 * expected + 8
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(frozen))
    for (path, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(base_before),
                                 jax.tree_util.tree_leaves_with_path(after)):
        assert a.tobytes() == b.tobytes(), jax.tree_util.keystr(path)
    assert losses[-1] < losses[0]
    b_after = [np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(state["params"]) if "lora_b" in str(p)]
    assert all(np.abs(b).max() > 0 for b in b_after)  # B starts at zero and moved


def test_adapters_carry_logical_axes_with_the_stacked_layer_axis():
    from medjax.parallel.mesh import make_mesh, state_shardings

    model, settings = peft_model("qlora")
    _, params, frozen = nnx.split(model, trainable_filter(settings), ...)
    mesh = make_mesh(devices=jax.devices()[:1])
    for tree in (params, frozen):  # every variable has axes that state_shardings accepts
        state_shardings(tree, mesh)
    q = model.layers.attn.q
    assert q.lora_a.get_metadata()["axes"] == ("embed", "lora_rank")
    assert q.lora_a.shape == (CFG.num_layers, CFG.hidden_size, RANK)
    assert q.lora_b.get_metadata()["axes"] == ("lora_rank", "q_heads")


def test_new_adapters_leave_the_model_unchanged_and_disabled_is_the_base(base_logits):
    model, _ = peft_model("lora")
    np.testing.assert_array_equal(logits(model, TOKENS), base_logits)  # B = 0
    randomise_b(model)
    assert np.abs(logits(model, TOKENS) - base_logits).max() > 1e-3

    @jax.jit
    def both(state):  # the DPO use: policy and reference in one traced function
        m = nnx.merge(graphdef, state)
        with adapters_disabled(m):
            ref = m(TOKENS)
        return m(TOKENS), ref

    graphdef, state = nnx.split(model)
    policy, ref = both(state)
    np.testing.assert_array_equal(np.asarray(ref), base_logits)
    np.testing.assert_allclose(np.asarray(policy), logits(model, TOKENS), atol=1e-6)
    assert all(m.enabled for _, m in lora_modules(model))


def test_merged_logits_equal_adapter_logits_and_unmerge_restores_the_base():
    model, _ = peft_model("lora", rslora=True)
    randomise_b(model)
    adapter = logits(model, TOKENS)
    merged_copy = backbone_of(model)
    assert not any(isinstance(m, LoRALinear) for _, m in nnx.iter_modules(merged_copy))
    np.testing.assert_allclose(logits(merged_copy, TOKENS), adapter, atol=1e-5, rtol=0)
    before = np.asarray(model.layers.mlp.down.base.kernel[...])
    merge_adapters(model)
    assert np.abs(np.asarray(model.layers.mlp.down.base.kernel[...]) - before).max() > 0
    np.testing.assert_allclose(logits(model, TOKENS), adapter, atol=1e-5, rtol=0)
    unmerge_adapters(model)
    assert np.asarray(model.layers.mlp.down.base.kernel[...]).tobytes() == before.tobytes()
    assert model.layers.mlp.down.scale == pytest.approx(lora_scale(8.0, RANK, True)) == pytest.approx(4.0)


def test_dropout_acts_only_with_an_rng():
    model, _ = peft_model("lora")
    randomise_b(model)
    for _, m in lora_modules(model):
        m.dropout = 0.5
    plain = logits(model, TOKENS)
    graphdef, state = nnx.split(model)

    @jax.jit
    def with_key(state, key):
        with dropout_rng(key):
            return nnx.merge(graphdef, state)(TOKENS)

    a, b = with_key(state, jax.random.PRNGKey(0)), with_key(state, jax.random.PRNGKey(1))
    assert np.abs(np.asarray(a) - plain).max() > 1e-4 and np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4
    np.testing.assert_allclose(np.asarray(_forward(graphdef, state, TOKENS)), plain, atol=1e-6)


def test_qlora_base_is_quantised_frozen_and_training_in_bf16_reduces_loss():
    cfg = CFG.replace(dtype="bfloat16")
    model, settings = peft_model("qlora", cfg=cfg)
    quantised = [m for _, m in nnx.iter_modules(model) if isinstance(m, QuantizedLinear)]
    assert len(quantised) == 7 and all(m.fmt == "nf4" for m in quantised)
    assert model.layers.attn.q.base.codes.dtype == jnp.uint8
    graphdef, params, frozen = nnx.split(model, trainable_filter(settings), ...)
    assert not jax.tree.leaves(nnx.state(model, QuantizedWeight).filter(trainable_filter(settings)))
    state, frozen_after, losses = train_steps(model, trainable_filter(settings), BATCH, 6, lr=2e-2)
    assert losses[-1] < losses[0] - 0.05, losses
    codes = model.layers.mlp.up.base.codes[...]
    assert np.asarray(codes).tobytes() == np.asarray(frozen_after["layers"]["mlp"]["up"]["base"]["codes"]).tobytes()


def test_qlora_checkpoint_round_trip_rebuilds_the_adapter_graph(tmp_path):
    model, settings = peft_model("qlora", quant="int8")
    randomise_b(model)
    expected = logits(model, TOKENS)
    save_params(str(tmp_path), model)
    settings.save(str(tmp_path))
    loaded, _ = load_params_model(str(tmp_path))
    assert isinstance(loaded.layers.attn.v, LoRALinear) and isinstance(loaded.layers.attn.v.base, QuantizedLinear)
    np.testing.assert_array_equal(logits(loaded, TOKENS), expected)
    # the exported backbone is a plain model close to the adapter model (int8 base dequantised)
    plain = backbone_of(loaded)
    np.testing.assert_allclose(logits(plain, TOKENS), expected, atol=1e-4)


def test_prompt_tuning_trains_only_the_soft_prompt(base_logits):
    model, settings = peft_model("prompt", num_virtual_tokens=4)
    out = logits(model, TOKENS)
    assert out.shape == base_logits.shape and np.abs(out - base_logits).max() > 1e-4
    with adapters_disabled(model):
        np.testing.assert_array_equal(logits(model, TOKENS), base_logits)
    state, frozen, losses = train_steps(model, trainable_filter(settings), BATCH, 3)
    assert count(state["params"]) == 4 * CFG.hidden_size
    assert losses[-1] < losses[0]
    plain = backbone_of(model)
    assert type(plain).__name__ == "DecoderLM" and not hasattr(plain, "soft_prompt")
    assert "soft_prompt" in nnx.to_pure_dict(nnx.state(model))  # beside layers/..., whose paths are unchanged


def test_bad_targets_rank_and_alpha_are_errors():
    with pytest.raises(ValueError, match=r"'qkv_proj' matches no Linear layer; available layers: .*layers/attn/q"):
        apply_peft(build(), PeftSettings(method="lora", targets="q,qkv_proj"))
    with pytest.raises(ValueError, match="lm_head"):  # tied embeddings: no LM head to adapt
        apply_peft(build(), PeftSettings(method="lora", targets="lm_head"))
    with pytest.raises(ValueError, match=r"config.peft.rank=0: must be positive"):
        PeftSettings(method="lora", rank=0)
    with pytest.raises(ValueError, match=r"config.peft.alpha=-1.0: must be positive"):
        PeftSettings(method="qlora", alpha=-1.0)
    with pytest.raises(ValueError, match="config.peft.method"):
        PeftSettings(method="adapter")


def test_targets_by_role_group_and_glob():
    from medjax.peft.targets import resolve_targets

    model = build()
    assert resolve_targets(model, "q,v") == [("layers", "attn", "q"), ("layers", "attn", "v")]
    assert len(resolve_targets(model, "mlp")) == 3
    assert resolve_targets(model, "layers/mlp/d*") == [("layers", "mlp", "down")]


@pytest.mark.parametrize("family", ["glm4", "chatglm6b"])
def test_roles_map_onto_the_glm_backbones(family):
    from medjax.models import glm, glm_v1
    from medjax.parallel.mesh import make_mesh, state_shardings
    from medjax.peft.setup import abstract_peft_model

    hf = dict(vocab_size=64, hidden_size=32, num_attention_heads=4)
    cfg = (glm.config_from_hf({"model_type": "glm4", "intermediate_size": 64, "num_hidden_layers": 2,
                               "num_key_value_heads": 2, "head_dim": 8, **hf}) if family == "glm4" else
           glm_v1.config_from_hf({"model_type": "chatglm", "inner_hidden_size": 64, "num_layers": 2,
                                  "max_sequence_length": 32, "mask_token_id": 50, "gmask_token_id": 51,
                                  "bos_token_id": 54, "eos_token_id": 55, **hf}))
    model = abstract_peft_model(cfg, PeftSettings(method="qlora", targets="attn,mlp"))  # shapes only
    adapted = {p[-1] for p, _ in lora_modules(model)}
    assert adapted == {"q", "k", "v", "o", "up", "down"} | ({"gate"} if family == "glm4" else set())
    state_shardings(nnx.split(model)[1], make_mesh(devices=jax.devices()[:1]))
