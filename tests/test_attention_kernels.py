"""model.attention: the kernel choice (models/attention_kernels.py) and splash attention against the
XLA path (layers.dot_product_attention), which is the reference.

Splash runs here in Pallas interpret mode (CPU), natively on TPU; its TPU compile runs where libtpu is
installed and is skipped with the reason elsewhere. Interpret mode compiles slowly: T = 128 (one
block), few shapes, forward and gradients in one jit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from medjax.models import attention_kernels, glm_v1, llama
from medjax.models.config import ModelConfig
from medjax.models.layers import (attention_mask, dot_product_attention, positions_from_segments,
                                  sliding_window_mask)
from medjax.parallel.tpu_topology import libtpu_available
from medjax.train.config import ConfigError, stage_section, training_config, validate
from tests.glm_configs import GLM_CONFIGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = 128


def _packed_segments(batch: int, t: int) -> jnp.ndarray:
    """Row 0: one document (plain causal); row 1: three documents, then padding (segment 0)."""
    seg = np.ones((batch, t), np.int32)
    seg[1, 30:70], seg[1, 70:t - 20], seg[1, t - 20:] = 2, 3, 0
    return jnp.asarray(seg)


def _qkv(t: int, heads: int, kv_heads: int, head_dim: int, seed: int = 0):
    r = np.random.default_rng(seed)
    return tuple(jnp.asarray(r.normal(size=(2, t, n, head_dim)), jnp.float32) for n in (heads, kv_heads, kv_heads))


def _xla(segments, window=None):
    slots = jnp.arange(segments.shape[1])

    def attend(q, k, v):
        mask = attention_mask(segments, segments, slots, slots)
        if window is not None:
            positions = positions_from_segments(segments)
            mask = mask & sliding_window_mask(positions, positions, window)
        return dot_product_attention(q, k, v, mask)

    return attend


def _out_and_grads(attend, q, k, v, cotangent):
    out, vjp = jax.vjp(attend, q, k, v)
    return out, vjp(cotangent)


def test_splash_equals_xla_forward_and_gradients_packed_gqa():
    """Causal (row 0), packed documents with padding (row 1), 4 query heads on 2 kv heads: splash's
    output and its gradients in q, k and v equal the XLA path's within 1e-5 (fp32)."""
    q, k, v = _qkv(T, heads=4, kv_heads=2, head_dim=64)
    segments = _packed_segments(2, T)
    cotangent = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)
    both = jax.jit(lambda q, k, v: (
        _out_and_grads(_xla(segments), q, k, v, cotangent),
        _out_and_grads(lambda *a: attention_kernels.splash_attention(*a, segments), q, k, v, cotangent)))
    (out_x, grads_x), (out_s, grads_s) = both(q, k, v)
    np.testing.assert_allclose(out_s, out_x, atol=1e-5, rtol=0)
    for name, gs, gx in zip("qkv", grads_s, grads_x):
        assert float(jnp.max(jnp.abs(gx))) > 1e-2, name  # a gradient that could differ
        np.testing.assert_allclose(gs, gx, atol=1e-5, rtol=0, err_msg=f"d{name}")


def test_splash_prefix_mask_forward_and_gradients():
    """GLM v1's prefix mask (Part A keys seen by their whole segment) as two splash calls merged by
    logsumexp, with a custom VJP: output and q, k, v gradients equal the XLA path's within 1e-5."""
    q, k, v = _qkv(T, heads=4, kv_heads=2, head_dim=32, seed=4)
    segments = _packed_segments(2, T)
    prefix = np.zeros((2, T), bool)
    prefix[0, :40], prefix[1, :20], prefix[1, 30:50], prefix[1, 70:75] = True, True, True, True
    prefix = jnp.asarray(prefix)
    slots = jnp.arange(T)
    xla = lambda q, k, v: dot_product_attention(q, k, v, attention_mask(segments, segments, slots, slots, prefix))
    cotangent = jnp.asarray(np.random.default_rng(5).normal(size=q.shape), jnp.float32)
    both = jax.jit(lambda q, k, v: (
        _out_and_grads(xla, q, k, v, cotangent),
        _out_and_grads(lambda *a: attention_kernels.splash_attention(*a, segments, prefix_BxT=prefix), q, k, v,
                       cotangent)))
    (out_x, grads_x), (out_s, grads_s) = both(q, k, v)
    np.testing.assert_allclose(out_s, out_x, atol=1e-5, rtol=0)
    for name, gs, gx in zip("qkv", grads_s, grads_x):
        np.testing.assert_allclose(gs, gx, atol=1e-5, rtol=0, err_msg=f"d{name}")
    # Part A matters here: the causal mask alone gives other outputs
    assert float(jnp.max(jnp.abs(_xla(segments)(q, k, v) - out_x))) > 1e-2


def test_splash_sliding_window_and_unaligned_length():
    """Mistral's window on positions equals splash's LocalMask on slots within packed documents; a T
    that is no multiple of 128 is padded inside (slots of their own segment, after every real one)."""
    t, window = 100, 16
    q, k, v = _qkv(t, heads=2, kv_heads=2, head_dim=32, seed=2)
    segments = _packed_segments(2, t)
    out_x, out_s = jax.jit(lambda q, k, v: (_xla(segments, window)(q, k, v),
                                            attention_kernels.splash_attention(q, k, v, segments, window)))(q, k, v)
    np.testing.assert_allclose(out_s, out_x, atol=1e-5, rtol=0)
    # the window matters here: without it the outputs differ
    assert float(jnp.max(jnp.abs(_xla(segments)(q, k, v) - out_x))) > 1e-2


@pytest.fixture(scope="module")
def tiny_llamas():
    """The same tiny LLaMA (2 layers, 4 query heads on 2 kv heads) with model.attention xla and splash."""
    cfg = ModelConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                      num_kv_heads=2, max_position_embeddings=256)
    return {kind: llama.build(cfg.replace(attention=kind), nnx.Rngs(0)) for kind in ("xla", "splash")}


def test_tiny_llama_logits_splash_equals_xla(tiny_llamas, monkeypatch):
    calls = []
    splash = attention_kernels.splash_attention
    monkeypatch.setattr(attention_kernels, "splash_attention", lambda *a, **kw: calls.append(1) or splash(*a, **kw))
    tokens = jnp.asarray(np.random.default_rng(3).integers(0, 128, (2, T)), jnp.int32)
    segments = _packed_segments(2, T)
    call = nnx.jit(lambda m, x, s: m(x, positions_from_segments(s), s))
    logits = {kind: call(model, tokens, segments) for kind, model in tiny_llamas.items()}
    assert calls, "model.attention=splash never reached the splash kernel"
    np.testing.assert_allclose(logits["splash"], logits["xla"], atol=1e-5, rtol=0)


def test_glm_v1_logits_splash_equals_xla():
    """ChatGLM-6B (tiny): Part A from the ids ([gMASK] <sop> per packed document), padding at the end."""
    cfg = GLM_CONFIGS["chatglm6b"]()
    ids = cfg.glm_tokens
    tokens = np.random.default_rng(6).integers(0, 50, (2, T))
    tokens[0, 40:42], tokens[1, 20:22], tokens[1, 80:82] = (ids.gmask, ids.sop), (ids.gmask, ids.sop), (ids.gmask,
                                                                                                       ids.sop)
    segments = np.ones((2, T), np.int32)
    segments[1, 60:], segments[1, 120:] = 2, 0
    logits = {kind: nnx.jit(lambda m, x, s: m(x, segment_ids_BxT=s))(
        glm_v1.build(cfg.replace(attention=kind), nnx.Rngs(0)), jnp.asarray(tokens), jnp.asarray(segments))
        for kind in ("xla", "splash")}
    np.testing.assert_allclose(logits["splash"], logits["xla"], atol=1e-5, rtol=0)


def test_choice_by_platform_and_features():
    llama_cfg = ModelConfig(attention="auto")
    bf16 = llama_cfg.replace(dtype="bfloat16")
    alibi = llama_cfg.replace(positions="alibi")
    prefix = llama_cfg.replace(mask="prefix")
    choose = attention_kernels.choose
    assert choose(llama_cfg, T, False, "tpu") == "splash"
    assert choose(llama_cfg.replace(sliding_window=64), T, False, "tpu") == "splash"
    assert choose(prefix, T, False, "tpu") == "splash"  # GLM v1: two calls merged by logsumexp
    assert [choose(c, T, False, "tpu") for c in (alibi, prefix.replace(sliding_window=8))] == ["xla", "xla"]
    assert choose(llama_cfg, T, True, "tpu") == "xla"  # a soft prompt's SHARED_SEGMENT keys
    assert choose(bf16, T, False, "gpu") == "cudnn"
    assert [choose(c, T, False, "gpu") for c in (llama_cfg, bf16.replace(positions="alibi"))] == ["xla", "xla"]
    assert choose(bf16, T, False, "cpu") == "xla"
    assert choose(llama_cfg.replace(attention="xla"), T, False, "tpu") == "xla"
    assert choose(llama_cfg.replace(attention="splash"), T, False, "cpu") == "splash"  # interpret mode
    for cfg, shared, feature in ((alibi, False, "ALiBi"), (prefix.replace(sliding_window=8), False, "prefix mask"),
                                 (llama_cfg, True, "soft prompt")):
        with pytest.raises(ValueError, match=f"model.attention='splash' cannot express .*{feature}"):
            choose(cfg.replace(attention="splash"), T, shared, "tpu")
    with pytest.raises(ValueError, match="model.attention='cudnn' needs a GPU"):
        choose(bf16.replace(attention="cudnn"), T, False, "cpu")
    with pytest.raises(ValueError, match="model.attention='cudnn' cannot run compute dtype float32"):
        choose(llama_cfg.replace(attention="cudnn"), T, False, "gpu")


def test_explicit_splash_with_a_soft_prompt_is_an_error(tiny_llamas):
    embeds = jnp.zeros((1, 8, 32))  # prompt tuning passes its soft prompt (SHARED_SEGMENT keys) as embeddings
    with pytest.raises(ValueError, match="soft prompt.*model.attention"):
        tiny_llamas["splash"](jnp.zeros((1, 8), jnp.int32), inputs_embeds_BxTxD=embeds)


def test_attention_key_is_checked():
    with pytest.raises(ValueError, match=r"ModelConfig.attention='flash' \(model.attention\)"):
        ModelConfig(attention="flash")
    old = json.loads(ModelConfig().to_json())
    del old["attention"]  # a model_config.json written before the key
    assert ModelConfig.from_dict(old).attention == "auto"
    c = training_config("cp")
    c.cp = stage_section("cp")
    c.model.attention = "flash"
    with pytest.raises(ConfigError, match="config.model.attention"):
        validate(c)


def test_fsdp_train_step_with_splash_on_4_devices():
    """A jitted train step (loss and gradients) with model.attention=splash on a 1 x 2 x 2 mesh (fsdp x
    tensor) of 4 CPU devices: splash runs inside a shard_map (rows over fsdp, heads over tensor) and
    equals the XLA path."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "splash_mesh_check.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["shard_map"] and r["devices"] == 4
    assert r["loss_diff"] < 1e-5 and r["grad_diff"] < 1e-5, r


@pytest.mark.skipif(not libtpu_available(), reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_splash_compiles_for_a_tpu_slice():
    """The real train step with model.attention=splash (never a silent fallback) compiles for v5e:2x2."""
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "medjax.plan", "--config=configs/cp.py", "--topology=v5e:2x2",
                           "--config.mesh.data=1", "--config.mesh.fsdp=-1", "--config.model.dtype=bfloat16",
                           "--config.model.attention=splash", "--config.model.preset=test",
                           "--config.train.batch_size=8", "--config.train.seq_len=128", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["chip"] == "v5e" and r["devices"] == 4 and r["fits"]


@pytest.mark.parametrize("blocks", [3, 8])
def test_causal_query_blocks_equal_the_dense_xla_path(blocks):
    """Row blocks against only their earlier keys give the dense path's output and q/k/v gradients
    (fp32, 1e-5): packed documents with padding, GQA, a sliding window, ALiBi and a soft prompt's
    SHARED_SEGMENT keys at the front; 3 blocks do not divide T = 128."""
    from medjax.models.layers import SHARED_SEGMENT, alibi_slopes, causal_query_blocks_attention, key_distance

    segments = _packed_segments(2, T).at[:, :4].set(SHARED_SEGMENT)
    slots = jnp.arange(T)
    positions = positions_from_segments(segments)
    mask = attention_mask(segments, segments, slots, slots) & sliding_window_mask(positions, positions, 48)
    alibi = (alibi_slopes(4), key_distance(positions, positions))
    q, k, v = _qkv(T, 4, 2, 16, seed=3)
    cotangent = jnp.asarray(np.random.default_rng(4).normal(size=q.shape), jnp.float32)
    dense = jax.jit(lambda q, k, v: _out_and_grads(lambda *x: dot_product_attention(*x, mask, alibi), q, k, v,
                                                   cotangent))(q, k, v)
    blocked = jax.jit(lambda q, k, v: _out_and_grads(
        lambda *x: causal_query_blocks_attention(*x, mask, alibi, blocks), q, k, v, cotangent))(q, k, v)
    for a, b in zip(jax.tree.leaves(blocked), jax.tree.leaves(dense)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_xla_query_blocks_only_for_causal_calls_on_cpu():
    llama_cfg = ModelConfig(family="llama", vocab_size=64, hidden_size=64, intermediate_size=128, num_layers=1,
                            num_heads=4, num_kv_heads=2)
    blocks = attention_kernels.xla_query_blocks
    assert [blocks(llama_cfg, t, "cpu") for t in (64, 200, 255, 256, 300, 512, 4096)] == [1, 1, 1, 4, 4, 8, 8]
    assert blocks(llama_cfg, 512, "gpu") == blocks(llama_cfg, 512, "tpu") == 1
    assert blocks(GLM_CONFIGS["chatglm6b"](), 512, "cpu") == 1  # GLM v1: Part A keys are seen by earlier rows
