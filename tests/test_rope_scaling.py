"""Rope scaling against transformers on tiny random models: LLaMA's linear and llama3 `rope_scaling`
(and their HF export), and the original ChatGLM2/3 / GLM-4 layout's `rope_ratio` (GLM-4-9B uses 500,
ChatGLM3-6B-32k 50: THUDM's rotary base is 10000 * rope_ratio, i.e. transformers' GLM rope_theta).

Rows run to position 63 and the heads are 8 wide (frequencies 1, 0.1, 0.01, 0.001), so a factor applied
the wrong way round (or not at all) moves the fast frequencies by radians and the logits far past atol."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

import medjax
from hf_fixtures import make_hf_llama, torch_logits
from test_glm_hf import TINY as GLM_TINY, _hf_logits, _randomize, _write_original_layout

IDS = np.random.default_rng(7).integers(3, 90, size=(2, 64))

LLAMA_SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    # original length 64: wavelength 6.3 is kept, 63 is smoothed, 628 and 6283 are divided by the factor
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
}


@pytest.mark.parametrize("kind", sorted(LLAMA_SCALINGS))
def test_llama_rope_scaling_matches_transformers(kind, tmp_path):
    rope = {"rope_theta": 10000.0, **LLAMA_SCALINGS[kind]}
    hf = make_hf_llama(str(tmp_path / "hf"), seed=4, rope_parameters=rope)
    assert hf.config.rope_parameters["rope_type"] == kind  # transformers really scales
    expected = torch_logits(hf, IDS)
    lm = medjax.load(f"hf:{tmp_path / 'hf'}")
    assert lm.config.rope_scaling["rope_type"] == kind
    np.testing.assert_allclose(lm.logits(IDS), expected, atol=1e-4, rtol=0)
    lm.save(f"hf:{tmp_path / 'out'}")  # the export keeps the scaling
    back = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager")
    np.testing.assert_allclose(torch_logits(back.float().eval(), IDS), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("rope_ratio", [50, 500])
def test_original_glm_rope_ratio_matches_transformers_rope_theta(rope_ratio, tmp_path):
    rope = {"rope_type": "default", "rope_theta": 10000.0 * rope_ratio, "partial_rotary_factor": 0.5}
    hf = _randomize(transformers.GlmForCausalLM(transformers.GlmConfig(**GLM_TINY, rope_parameters=rope)), 5)
    hf = hf.float().eval()
    _write_original_layout(hf, str(tmp_path))
    with open(tmp_path / "config.json") as f:
        config = json.load(f)
    with open(tmp_path / "config.json", "w") as f:
        json.dump({**config, "rope_ratio": rope_ratio}, f)
    lm = medjax.load(f"hf:{tmp_path}")
    np.testing.assert_allclose(lm.logits(IDS), _hf_logits(hf, IDS), atol=1e-4, rtol=0)
