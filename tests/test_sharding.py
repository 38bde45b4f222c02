"""Sharding on simulated CPU meshes: equal losses on every mesh, FSDP memory, restore across meshes,
and clear errors for meshes that do not fit. Multi-device work runs in one subprocess
(tests/multidevice_checks.py) because this pytest process has a single CPU device."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AbstractMesh

from medjax.checkpoint.hf_model import abstract_model
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.parallel.mesh import mesh_shape, put_batch, state_shardings
from medjax.parallel.rules import MESH_AXES, logical_to_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# data-parallel only, fsdp only, tensor-parallel only, all three; the slow test adds 1x2x4
FAST_MESHES = "1dev,8x1x1,1x8x1,1x1x8,2x2x2"


def run_checks(out_dir, meshes: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "multidevice_checks.py"), str(out_dir),
                           meshes], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    out = tmp_path_factory.mktemp("multidevice")
    return out, run_checks(out, FAST_MESHES)


def assert_losses_match(losses: dict):
    reference = losses.pop("1dev")
    assert len(reference) == 3
    for name, values in losses.items():
        np.testing.assert_allclose(values, reference, atol=1e-4, rtol=0, err_msg=f"mesh {name}")


def test_three_steps_on_dp_fsdp_tp_and_mixed_meshes_match_one_device(checks):
    _, report = checks
    assert report["device_count"] == 8
    assert set(report["losses"]) == set(FAST_MESHES.split(","))
    assert_losses_match(dict(report["losses"]))


@pytest.mark.slow
def test_three_steps_on_every_mesh_match_one_device(tmp_path):
    report = run_checks(tmp_path, "1dev,8x1x1,1x8x1,1x1x8,2x2x2,1x2x4")
    assert set(report["losses"]) == {"1dev", "8x1x1", "1x8x1", "1x1x8", "2x2x2", "1x2x4"}
    assert_losses_match(dict(report["losses"]))


def test_fsdp8_holds_an_eighth_of_params_and_optimizer_state_per_device(checks):
    memory = checks[1]["memory"]
    assert memory["devices"] == 8
    # norm scales and step counters stay replicated: at most 2% above an exact eighth
    assert max(memory["per_device_bytes"]) <= memory["total_bytes"] / 8 * 1.02, memory


def test_checkpoint_from_fsdp8_restores_on_2x2x2_then_on_one_device(checks):
    out, report = checks
    restore = report["restore"]
    assert restore["identical_8_vs_222"]
    assert restore["device_counts_222"] == [8]
    assert restore["specs_222"]["['layers']['mlp']['up']['kernel']"] == "P(None, 'fsdp', 'tensor')"
    import medjax

    model = medjax.load(f"ckpt:{out}/params_from_2x2x2").model  # this process has 1 device
    _, state = nnx.split(model)
    got = {jax.tree_util.keystr(p): np.asarray(x)
           for p, x in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(state))}
    expected = np.load(os.path.join(out, "params_expected.npz"))
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_trainer_resumes_an_fsdp8_checkpoint_on_2x2x2(checks):
    report = checks[1]
    resume = report["resume"]
    assert resume["last_loss"] == report["losses"]["1x8x1"][-1]  # restored at the final step: from its meta
    assert resume["first_loss"] == report["losses"]["1x8x1"][0]
    assert resume["losses"] == report["losses"]["1x8x1"]


def test_greedy_decoding_with_a_sharded_kv_cache_matches_one_device(checks):
    tokens = checks[1]["generate"]
    assert tokens["2x2x2"] == tokens["1dev"] and len(tokens["1dev"][0]) == 4


def test_mesh_whose_product_is_not_the_device_count_names_the_axes():
    with pytest.raises(ValueError, match=r"mesh: data x fsdp x tensor = 2 x 2 x 1 = 4, but there are 8 devices"):
        mesh_shape(2, 2, 1, 8)
    with pytest.raises(ValueError, match=r"mesh\.fsdp=3"):
        mesh_shape(-1, 3, 1, 8)
    with pytest.raises(ValueError, match="only one axis may be -1"):
        mesh_shape(-1, -1, 1, 8)
    assert mesh_shape(-1, 2, 2, 8) == (2, 2, 2)


def test_axis_that_does_not_divide_a_parameter_names_both():
    cfg = ModelConfig(family="llama", vocab_size=128, **preset("test"))
    _, state = nnx.split(abstract_model(cfg))
    mesh = AbstractMesh((1, 1, 32), MESH_AXES)  # no devices needed to check divisibility
    with pytest.raises(ValueError, match=r"parameter layers/attn/k/kernel: dimension 2 \(kv_heads, size 16\) "
                                         r"is not divisible by mesh axis tensor of size 32"):
        state_shardings(state, mesh)


def test_batch_that_does_not_split_over_the_batch_axes_names_the_key():
    mesh = AbstractMesh((2, 2, 2), MESH_AXES)
    with pytest.raises(ValueError, match=r"batch\['tokens'\] has 6 rows.*mesh.data x mesh.fsdp = 4"):
        put_batch({"tokens": np.zeros((6, 8), np.int32)}, mesh)


def test_unknown_logical_axis_is_an_error_not_a_silent_replicate():
    with pytest.raises(KeyError, match="'experts'"):
        logical_to_spec(("batch", "experts"))
