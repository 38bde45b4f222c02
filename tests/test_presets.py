"""Real-model presets (models/presets.py) build the published architectures: parameter counts of the
abstract models (shapes only, nothing allocated) against counts worked out here from the published
config.json shapes, and against the headline sizes the model cards give."""
import math
import types

import jax
import pytest
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model
from medjax.models.presets import PUBLISHED, preset, published_config, scratch_config


def _llama(v, d, f, layers, heads, kv_heads):
    hd = d // heads
    per_layer = d * hd * (2 * heads + 2 * kv_heads) + 3 * d * f + 2 * d  # q k v o, gate up down, 2 RMSNorms
    return 2 * v * d + layers * per_layer + d  # untied embedding and head, final norm


def _glm_v1(v, d, f, layers, position_rows=0, tied=False):
    # fused qkv + dense (with biases), up + down (with biases), 2 LayerNorms (weight + bias)
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    return v * d * (1 if tied else 2) + 2 * position_rows * d + layers * per_layer + 2 * d


def _chatglm2(v, d, f, layers, heads, groups, kv_channels):
    qkv = heads * kv_channels + 2 * groups * kv_channels
    per_layer = (d * qkv + qkv) + heads * kv_channels * d + d * 2 * f + f * d + 2 * d  # qkv bias, SwiGLU
    return 2 * v * d + layers * per_layer + d


# preset -> (parameters from the published shapes, the model card's headline size)
EXPECTED = {
    "llama2-7b": (_llama(32000, 4096, 11008, 32, 32, 32), 6.74e9),
    "llama2-13b": (_llama(32000, 5120, 13824, 40, 40, 40), 13.0e9),
    "llama3-8b": (_llama(128256, 4096, 14336, 32, 32, 8), 8.03e9),
    # the checkpoint stores lm_head apart from the embedding table; the card's 6.2B counts the table once
    "chatglm-6b": (_glm_v1(130528, 4096, 16384, 28), 6.2e9 + 130528 * 4096),
    # tied head; position and block-position tables of max_sequence_length + 1 rows
    "glm-10b": (_glm_v1(50304, 4096, 4 * 4096, 48, position_rows=1025, tied=True), 10e9),
    "chatglm3-6b": (_chatglm2(65024, 4096, 13696, 28, 32, 2, 128), 6.24e9),
    "glm4-9b": (_chatglm2(151552, 4096, 13696, 40, 32, 2, 128), 9.4e9),
}


def _abstract_params(cfg) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract_model(cfg), nnx.Param)))


def test_every_real_preset_has_an_expected_count():
    assert set(EXPECTED) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_preset_parameter_count_matches_the_published_shapes(name):
    exact, headline = EXPECTED[name]
    count = _abstract_params(published_config(name))
    assert count == exact, (name, count, exact)
    assert abs(exact - headline) <= 0.02 * headline, (name, exact, headline)  # the shapes here are the card's


def test_scratch_config_keeps_real_vocabularies_and_refuses_a_larger_tokenizer():
    tokenizer = types.SimpleNamespace(vocab_size=1000, bos_id=1, eos_id=2, pad_id=0)
    cfg = scratch_config("glm4-9b", tokenizer, dtype="bfloat16")
    assert (cfg.family, cfg.vocab_size, cfg.num_kv_heads, cfg.dtype) == ("glm", 151552, 2, "bfloat16")
    assert scratch_config("llama3-8b", tokenizer).eos_token_id == 2  # LLaMA ids come from the run's tokenizer
    assert scratch_config("tiny", tokenizer).vocab_size == 1024  # shape presets: the tokenizer's, rounded up
    assert preset("llama2-7b")["intermediate_size"] == 11008
    with pytest.raises(ValueError, match="'glm-10b' has 50304 vocabulary rows"):
        scratch_config("glm-10b", types.SimpleNamespace(vocab_size=65024, bos_id=1, eos_id=2, pad_id=0))
    with pytest.raises(ValueError, match="config.model.preset='llama9'"):
        scratch_config("llama9", tokenizer)
    with pytest.raises(ValueError, match="is a glm_v1 model"):
        preset("chatglm-6b")
