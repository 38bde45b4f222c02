"""medjax.plan: the real train step compiled for a device topology from shapes alone.

CI runs the plan on fake CPU devices (`--topology=cpu:8` in a subprocess, since this pytest process
has one CPU device) and the library on one device; the TPU compile runs where libtpu is installed
(`pip install -e '.[tpu]'`) and is skipped with the reason elsewhere.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model
from medjax.data.tokenizer import load_tokenizer
from medjax.models.layers import Linear
from medjax.models.presets import scratch_config
from medjax.parallel.tpu_topology import (INSTALL_HINT, TpuNotInstalled, environment_for, libtpu_available,
                                          parse_topology, topology_devices)
from medjax.train.flops import matmul_weights, step_flops
from medjax.train.model_init import default_tokenizer_path
from tests.glm_configs import GLM_CONFIGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--config.model.preset=test", "--config.train.batch_size=8", "--config.train.seq_len=64"]


def _config(path: str, **overrides):
    from medjax.train.config import load_config_file

    c = load_config_file(os.path.join(ROOT, path))
    for key, value in overrides.items():
        section, name = key.split(".")
        c[section][name] = value
    return c


def test_topology_names():
    assert parse_topology("v5e:4x4").num_devices == 16
    assert parse_topology("v5p:2x2x1").chip.hbm_bytes == 95 << 30
    assert parse_topology("cpu:8").chip is None
    for bad in ("v5e", "v5e:4x4x1", "v4:2x2", "tpu:4", "v6e:axb", "cpu:0"):
        with pytest.raises(ValueError, match="--topology"):
            parse_topology(bad)
    env = environment_for(parse_topology("cpu:8"))
    assert "--xla_force_host_platform_device_count=8" in env["XLA_FLAGS"] and env["JAX_PLATFORMS"] == "cpu"


@pytest.mark.skipif(libtpu_available(), reason="libtpu is installed here")
def test_tpu_topology_without_libtpu_says_how_to_install():
    with pytest.raises(TpuNotInstalled, match=re.escape(INSTALL_HINT)):
        topology_devices(parse_topology("v5e:2x2"))


def _graph_matmul_weights(cfg) -> int:
    """Every Linear kernel of the built graph, plus the tied embedding table used as the head."""
    model = abstract_model(cfg)
    kernels = sum(m.kernel.size for _, m in nnx.iter_modules(model) if isinstance(m, Linear))
    return kernels + (model.embed.embedding.size if cfg.tie_embeddings else 0)


@pytest.mark.parametrize("family", ["llama", *GLM_CONFIGS])
def test_flops_count_the_weights_the_graph_multiplies(family):
    """The analytic N of train/flops.py equals the matmul weights of the model each family builds
    (GQA, SwiGLU, GLM v1's plain MLP and full heads, tied and untied heads)."""
    cfg = (scratch_config("test", load_tokenizer(default_tokenizer_path())) if family == "llama"
           else GLM_CONFIGS[family]())
    assert matmul_weights(cfg) == _graph_matmul_weights(cfg)
    full = step_flops(cfg, 2, 16, full=True)
    lora = step_flops(cfg, 2, 16, full=False, adapter_weights=100)
    prompt = step_flops(cfg, 2, 16, full=False, prompt_tokens=4)
    # frozen weights lose their weight gradients (2 N per token); adapters add 6 per weight per token
    assert full.model - lora.model == (2 * matmul_weights(cfg) - 600) * full.tokens
    assert prompt.tokens == 2 * 20


@pytest.fixture(scope="module")
def cpu8_report():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # the CLI sets the device count itself
    proc = subprocess.run([sys.executable, "-m", "medjax.plan", "--config=configs/cp.py", "--topology=cpu:8",
                           "--config.mesh.data=2", "--config.mesh.fsdp=-1", "--json", *SMALL],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cpu8_plan_reports_every_field(cpu8_report):
    r = cpu8_report
    for key in ("fits", "hbm_bytes_per_device", "per_device", "model_flops_per_step", "est_step_s", "est_mfu",
                "compile_s", "topology", "mesh"):
        assert key in r, key
    assert r["topology"] == "cpu:8" and r["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1} and r["fits"]
    assert set(r["per_device"]) >= {"params", "optimizer", "frozen", "temp", "total"}
    assert r["per_device"]["temp"] > 0 and r["compile_s"] > 0
    assert r["model_flops_per_step"] > 6 * r["model"]["params"] * 8 * 64 * 0.5


def test_cpu8_plan_bytes_match_the_analytic_count(cpu8_report):
    """fp32 weights sharded 4 ways (fsdp) and replicated over data: params x 4 B / 4 per device, Adam's
    mu + nu twice that; the compiled step's arguments hold exactly what plan says each one holds."""
    r = cpu8_report
    pd, shards = r["per_device"], r["mesh"]["fsdp"] * r["mesh"]["tensor"]
    analytic = r["model"]["params"] * 4 / shards
    assert pd["params"] == pytest.approx(analytic, rel=0.05)
    assert pd["optimizer"] == pytest.approx(2 * analytic, rel=0.05)
    assert pd["frozen"] == 0
    held = pd["params"] + pd["optimizer"] + pd["frozen"] + pd["batch"] + pd["reference"]
    assert pd["compiler"]["arguments"] == pytest.approx(held, rel=0.05)
    assert pd["total"] >= pd["compiler"]["arguments"] + pd["temp"] - pd["compiler"]["aliased"]


def test_lora_plan_freezes_the_base_and_suggests_when_short():
    """LoRA on one CPU device: the base is frozen (no optimizer state), only adapters train, and FLOPs
    count 4 per frozen weight; a budget it exceeds gets remat / batch suggestions."""
    from medjax.parallel.mesh import make_mesh
    from medjax.train.plan import abstract_stage, plan, suggestions

    c = _config("configs/ift_lora.py", **{"model.preset": "test", "train.batch_size": 8, "train.seq_len": 64,
                                          "mesh.data": 1})
    r = plan(c, None, parse_topology("cpu:1"))
    pd = r["per_device"]
    assert r["fits"] and r["peft"] == "lora"
    assert pd["frozen"] == pytest.approx(r["model"]["params"] * 4, rel=0.05)
    assert pd["optimizer"] == pytest.approx(2 * pd["params"], rel=0.05)
    assert pd["params"] == r["model"]["trainable"] * 4 < pd["frozen"] / 10
    spec = abstract_stage(c, "ift", make_mesh(1, 1, 1, devices=jax.devices()[:1]))
    tips = suggestions(spec, pd, hbm=pd["total"] // 2)
    assert any("remat=full" in s for s in tips) and any("grad_accum=2" in s for s in tips)


@pytest.mark.skipif(not libtpu_available(), reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_tpu_v5e_2x2_compiles_the_test_preset():
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "medjax.plan", "--config=configs/cp.py", "--topology=v5e:2x2",
                           "--config.mesh.data=1", "--config.mesh.fsdp=-1", "--config.model.dtype=bfloat16",
                           "--json", *SMALL], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["chip"] == "v5e" and r["devices"] == 4 and r["fits"]
    assert r["hbm_bytes_per_device"] == 16 << 30 and 0 < r["est_mfu"] <= 1
    assert r["per_device"]["params"] == pytest.approx(r["model"]["params"] * 4 / 4, rel=0.05)


def test_tpu_topologies_default_libtpu_init_args(monkeypatch):
    """glm-10b full over fsdp 4 aborts libtpu 0.0.42.1 (rotated_pincer_fusion_emitter.cc:1904) unless two
    collective optimisations are off: a TPU plan turns them off when LIBTPU_INIT_ARGS is unset, keeps the
    user's value (even "") when set, and a cpu:N plan leaves it alone."""
    from medjax.parallel.tpu_topology import DEFAULT_LIBTPU_INIT_ARGS

    monkeypatch.delenv("LIBTPU_INIT_ARGS", raising=False)
    assert environment_for(parse_topology("v5p:2x2x1"))["LIBTPU_INIT_ARGS"] == DEFAULT_LIBTPU_INIT_ARGS
    assert "--xla_tpu_enable_all_reduce_scatter_fusion=false" in DEFAULT_LIBTPU_INIT_ARGS
    assert "LIBTPU_INIT_ARGS" not in environment_for(parse_topology("cpu:2"))
    monkeypatch.setenv("LIBTPU_INIT_ARGS", "")
    assert "LIBTPU_INIT_ARGS" not in environment_for(parse_topology("v5e:2x2"))


def test_layer_loop_is_a_scan_of_one_layer_on_tpu_and_a_python_loop_for_shallow_models_on_cpu():
    """On the TPU compiler a two-layer loop body holds both layers' working sets (llama2-7b full, v5e:4x4:
    6.87 GiB of temporaries against 6.72 with one layer) and takes about twice as long to compile. On CPU
    no scan: its stacked residuals cost the bench50m step ~5% (decoder.run_layers). Both give the same
    outputs, stacked per-layer outputs included."""
    from medjax.models.config import ModelConfig
    from medjax.models.decoder import CPU_LOOP_MAX_LAYERS, run_layers
    from medjax.models.presets import preset
    from medjax.models.registry import family_module

    def body(x, w):
        return jax.numpy.tanh(x @ w), x.sum()

    jnp = jax.numpy
    x, ws = jnp.ones((2, 3)), jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3))
    for platform in ("tpu", "gpu"):
        jaxpr = jax.make_jaxpr(lambda x, ws: run_layers(body, x, ws, platform))(x, ws)
        assert [e.params["unroll"] for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"] == [1]
    looped, scanned = run_layers(body, x, ws, "cpu"), run_layers(body, x, ws, "tpu")
    for a, b in zip(jax.tree.leaves(looped), jax.tree.leaves(scanned)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert looped[1].shape == (4,)
    deep = jnp.zeros((CPU_LOOP_MAX_LAYERS + 1, 3, 3))  # past it CPU scans two layers per iteration
    jaxpr = jax.make_jaxpr(lambda x, ws: run_layers(body, x, ws, "cpu"))(x, deep)
    assert [e.params["unroll"] for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"] == [2]

    model = family_module("llama").build(ModelConfig(family="llama", vocab_size=64, **preset("test")), nnx.Rngs(0))
    jaxpr = jax.make_jaxpr(lambda t: model(t))(jax.numpy.zeros((1, 8), jax.numpy.int32))
    assert jax.default_backend() == "cpu" and not [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
