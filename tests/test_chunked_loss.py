"""The LM head applied a chunk of tokens at a time (train/chunked_loss.py) gives the loss, the gradients
and the preference log-probs of the one-pass head; evaluation applies the head only where it scores."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glm_configs import GLM_CONFIGS
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.models.registry import family_module
from medjax.peft.config import PeftSettings
from medjax.peft.lora import LoRAParam
from medjax.peft.setup import apply_peft
from medjax.train.chunked_loss import resolve_chunk
from medjax.train.objectives import lm_objective, preference_objective
from medjax.train.preference import PreferenceSettings

VOCAB = 64
CHUNK = 10  # 5 positions of each of the 2 rows per chunk: T = 12 is not a multiple, the last chunk is padded


def _batch(seed=0):
    """Two rows of 12: two packed documents then padding (segment 0), loss_mask 0 on some tokens."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, VOCAB - 16, (2, 12)).astype(np.int32)  # clear of the GLM v1 special ids
    segments = np.array([[1] * 5 + [2] * 5 + [0] * 2, [1] * 4 + [2] * 7 + [0]], np.int32)
    positions = np.zeros_like(segments)
    for r in range(2):
        for s in (1, 2):
            where = segments[r] == s
            positions[r, where] = np.arange(where.sum())
    loss_mask = ((segments > 0) & (rng.random(segments.shape) > 0.25)).astype(np.float32)
    return {"tokens": tokens, "targets": np.roll(tokens, -1, 1), "loss_mask": loss_mask, "segment_ids": segments,
            "positions": positions}


def _randomised_adapters(model):
    """LoRA's B starts at zero; random values make the adapters (and their gradients) matter."""
    state = nnx.state(model, LoRAParam)
    keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(state))))
    nnx.update(model, jax.tree.map(lambda x: 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), state))
    return model


def _llama_tied_prompt_tuned():
    cfg = ModelConfig(family="llama", vocab_size=VOCAB, **preset("test"))
    return apply_peft(family_module("llama").build(cfg, nnx.Rngs(0)), PeftSettings(method="prompt",
                                                                                     num_virtual_tokens=3))


def _glm4_lora_head():
    cfg = GLM_CONFIGS["glm4"]()
    assert not cfg.tie_embeddings
    model = family_module(cfg.family).build(cfg, nnx.Rngs(0))
    return _randomised_adapters(apply_peft(model, PeftSettings(method="lora", rank=2, targets="q,lm_head,embed")))


def _chatglm6b():
    cfg = GLM_CONFIGS["chatglm6b"]()
    return family_module(cfg.family).build(cfg, nnx.Rngs(0))


MODELS = {"llama_tied_prompt": _llama_tied_prompt_tuned, "glm4_lora_head_and_embed": _glm4_lora_head,
          "chatglm6b": _chatglm6b}


def _loss_and_grads(model, objective, batch, extras, chunk):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    fn = jax.value_and_grad(lambda p: objective(nnx.merge(graphdef, p, rest), batch, extras, loss_chunk=chunk)[0])
    return jax.jit(fn)(params)


def _assert_same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    np.testing.assert_allclose(loss_a, loss_b, rtol=0, atol=1e-6)
    for (path, ga), gb in zip(jax.tree.leaves_with_path(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-6, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_lm_loss_and_gradients_equal_the_one_pass_head(name):
    model, batch = MODELS[name](), _batch()
    one_pass = _loss_and_grads(model, lm_objective, batch, {}, 0)
    chunked = _loss_and_grads(model, lm_objective, batch, {}, CHUNK)
    _assert_same(chunked, one_pass)
    assert float(one_pass[0]) > 1.0  # a real loss, not a masked-out zero


def test_chunked_preference_log_probs_equal_the_one_pass_head():
    """DPO with a frozen copy as reference: policy and reference log-probs both go through the chunks."""
    model = _chatglm6b()
    batch = _batch(1)
    extras = {"preference": PreferenceSettings(loss="dpo", reference="copy", beta=0.5),
              "reference_state": jax.tree.map(lambda x: x * 1.01, nnx.state(model))}
    _assert_same(_loss_and_grads(model, preference_objective, batch, extras, CHUNK),
                 _loss_and_grads(model, preference_objective, batch, extras, 0))


def test_chunk_size_by_vocabulary_config_key_and_bad_values():
    from medjax.train.config import ConfigError, load_config_file, validate
    from medjax.train.objectives import get_objective

    c = load_config_file(os.path.join(os.path.dirname(__file__), "..", "configs", "cp_ift.py"))
    assert c.train.loss_chunk is None  # by vocabulary
    assert get_objective("lm", 256).keywords == {"loss_chunk": 256}
    c.train.loss_chunk = -1
    with pytest.raises(ConfigError, match="train.loss_chunk"):
        validate(c)
    assert resolve_chunk(None, 32000, 4096) == 4096  # small vocabularies keep the one-pass head
    assert resolve_chunk(None, 151552, 4096) == 1024
    assert resolve_chunk(0, 151552, 4096) == 4096
    assert resolve_chunk(8192, 151552, 4096) == 4096
    with pytest.raises(ValueError, match="train.loss_chunk=-1"):
        resolve_chunk(-1, 32000, 4096)


def test_eval_head_only_at_scored_positions_equals_full_logits():
    """target_logprobs' compiled path (hidden states gathered, then the head) against the numpy
    computation on the full [B, T, V] logits, on a prompt-tuned tied model and an untied LoRA'd one."""
    from medjax.eval.target_logprobs import _from_logits, make_forward

    rng = np.random.default_rng(2)
    tokens = rng.integers(3, VOCAB - 16, (2, 12)).astype(np.int32)
    positions = np.array([[3, 7, 11, 0], [0, 1, 2, 5]], np.int32)
    candidates = rng.integers(0, VOCAB, (2, 4, 8)).astype(np.int32)
    for build in (_llama_tied_prompt_tuned, _glm4_lora_head):
        model = build()

        class LM:
            pass

        lm = LM()
        lm.model = model
        logprobs, argmax = make_forward(lm)(tokens, positions, candidates)
        full = np.asarray(jax.jit(lambda t: model(t))(jnp.asarray(tokens)))  # today's method: every position
        want_logprobs, want_argmax = _from_logits(full, positions, candidates)
        np.testing.assert_allclose(logprobs, want_logprobs, atol=2e-5)
        np.testing.assert_array_equal(argmax, want_argmax)


@pytest.mark.parametrize("kernel_is_VxD", [False, True])
def test_logits_dot_gradients_stay_in_the_compute_dtype(kernel_is_VxD):
    """The head's fp32-output matmul (layers.logits_dot): in fp32 its gradients are autodiff's exactly; in
    bf16 no fp32 value of the kernel's size appears in the backward (autodiff's makes the kernel gradient
    in fp32 and rounds it afterwards: a 500 MiB buffer per chip for llama2-7b on v5e:4x4)."""
    from medjax.models.layers import logits_dot

    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x, w, g = jax.random.normal(k1, (6, 8)), jax.random.normal(k2, (8, 10)), jax.random.normal(k3, (6, 10))
    kernel = w.T if kernel_is_VxD else w

    def ours(x, kernel):
        return jnp.sum(logits_dot(x, kernel, kernel_is_VxD) * g)

    def autodiff(x, kernel):
        return jnp.sum(jnp.dot(x, kernel.T if kernel_is_VxD else kernel, preferred_element_type=jnp.float32) * g)

    for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(autodiff, (0, 1))(x, kernel)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    xb, kb = x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)
    assert logits_dot(xb, kb, kernel_is_VxD).dtype == jnp.float32
    jaxpr = jax.make_jaxpr(jax.grad(ours, 1))(xb, kb)
    sizes = [v.aval for eqn in jaxpr.eqns for v in eqn.outvars]
    assert not [a for a in sizes if a.dtype == jnp.float32 and a.size == kernel.size], jaxpr
    for a, b in zip(jax.grad(ours, (0, 1))(xb, kb), jax.grad(autodiff, (0, 1))(x, kernel)):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b), atol=0.1, rtol=0.02)


def test_chunks_count_each_devices_tokens_not_the_global_batchs():
    """Each chunk all-gathers the head and reduces its gradient over the mesh: with 8 rows split 4 ways a
    chunk of 10 tokens is 5 positions of a device's 2 rows (3 chunks over T = 12), not 1 position of all 8
    (12 chunks, 4x the collectives)."""
    from jax.sharding import AbstractMesh

    from medjax.parallel.rules import MESH_AXES, activation_sharding
    from medjax.train.chunked_loss import chunked_nll, local_rows

    model = _chatglm6b()
    hidden = jnp.zeros((8, 12, model.config.hidden_size))
    targets = jnp.zeros((8, 12), jnp.int32)

    def scan_lengths():
        jaxpr = jax.make_jaxpr(lambda h: chunked_nll(model, h, targets, CHUNK))(hidden)
        return [e.params["length"] for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]

    mesh = AbstractMesh((1, 4, 1), MESH_AXES)
    assert local_rows(8, mesh) == 2 and local_rows(6, mesh) == 6  # 6 rows do not split 4 ways: replicated
    with activation_sharding(mesh):
        assert scan_lengths() == [3]
    assert scan_lengths() == [12]  # no mesh: one device holds all 8 rows
