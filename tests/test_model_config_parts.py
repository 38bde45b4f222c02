"""ModelConfig's typed network parts (positions, mask, norm, mlp, residual, biases, GLM v1's flavour and
token ids): model_config.json files written before them (GLM v1's `extra` dict, `alibi: bool`) still
load, as the same config and, for a checkpoint, the same model; bad values are named; every family,
GLM v1 included, runs the one decoder (models/decoder.py)."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.models import baichuan, decoder, glm_v1
from medjax.models.config import GLMTokens, ModelConfig
from tests.glm_configs import GLM_CONFIGS

_COMMON = {"family": "glm_v1", "vocab_size": 64, "hidden_size": 32, "num_layers": 2, "num_heads": 4,
           "num_kv_heads": 4, "head_dim": 8, "rope_theta": 10000.0, "rope_scaling": None,
           "partial_rotary_factor": 1.0, "rope_interleaved": False, "norm_eps": 1e-05, "attention_bias": True,
           "post_norms": False, "sliding_window": None, "alibi": False, "norm_head": False,
           "max_position_embeddings": 32, "bos_token_id": 54, "eos_token_id": 55, "pad_token_id": None,
           "dtype": "float32", "param_dtype": "float32", "remat": "none"}
# model_config.json exactly as medjax wrote it before the typed parts (tests/glm_configs.py's shapes)
OLD = {
    "chatglm6b": {**_COMMON, "intermediate_size": 48, "tie_embeddings": False, "extra": {
        "model_type": "chatglm", "flavour": "chatglm", "activation": "gelu_tanh", "mask_token_id": 50,
        "gmask_token_id": 51, "smask_token_id": None, "sop_token_id": 54, "eop_token_id": 55}},
    "glm10b": {**_COMMON, "intermediate_size": 128, "tie_embeddings": True, "extra": {
        "model_type": "glm", "flavour": "glm", "activation": "gelu", "mask_token_id": 50, "smask_token_id": None,
        "gmask_token_id": 51, "sop_token_id": 54, "eop_token_id": 55}},
}


@pytest.mark.parametrize("name", sorted(OLD))
def test_old_glm_v1_model_config_reads_as_the_typed_config(name):
    old, today = ModelConfig.from_dict(json.loads(json.dumps(OLD[name]))), GLM_CONFIGS[name]()
    assert old == today and old.to_json() == today.to_json()
    assert old.extra == {"model_type": OLD[name]["extra"]["model_type"]}  # only the HF field stays untyped
    assert old.glm_tokens == GLMTokens(mask=50, gmask=51, sop=54, eop=55)
    chatglm = name == "chatglm6b"
    assert (old.flavour, old.positions, old.mask, old.norm, old.mlp, old.residual) == (
        ("chatglm", "glm2d_rope", "prefix", "layer", "gelu_tanh", "scaled_normed") if chatglm else
        ("glm", "glm_learned", "prefix", "layer", "gelu", "pre_norm"))
    assert old.mlp_bias and old.attention_bias and old.attention_out_bias
    # code written against the old layout still reads the old keys; they are never written again
    assert old.extra["flavour"] == old.flavour and old.extra.get("sop_token_id") == 54
    saved = json.loads(old.to_json())
    assert "flavour" not in saved["extra"] and "alibi" not in saved
    assert ModelConfig.from_dict(saved) == old


def test_old_alibi_flag_reads_as_positions():
    cfg = baichuan.config_from_hf({"model_type": "baichuan", "vocab_size": 64, "hidden_size": 32,
                                   "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                                   "model_max_length": 64})  # a 13B layout: ALiBi
    written_before = {**{k: v for k, v in json.loads(cfg.to_json()).items() if k != "positions"}, "alibi": True}
    assert ModelConfig.from_dict(written_before) == cfg and cfg.positions == "alibi" and cfg.alibi
    llama_before = {**json.loads(ModelConfig().to_json()), "alibi": False}
    llama_before.pop("positions")
    assert ModelConfig.from_dict(llama_before) == ModelConfig()
    with pytest.raises(ValueError, match="ModelConfig.alibi='yes'"):
        ModelConfig.from_dict({**llama_before, "alibi": "yes"})


def test_old_checkpoint_directory_loads_the_same_model(tmp_path):
    """A ckpt: directory whose model_config.json has the old `extra`: same parameter paths, same logits."""
    cfg = GLM_CONFIGS["chatglm6b"]()
    model = glm_v1.build(cfg, nnx.Rngs(5))
    save_params(str(tmp_path), model)
    with open(os.path.join(tmp_path, "model_config.json"), "w") as f:
        json.dump(OLD["chatglm6b"], f)
    loaded, _ = load_params_model(str(tmp_path))
    assert type(loaded) is glm_v1.GLMv1LM and loaded.config == cfg
    tokens = jnp.asarray([[3, 50, 7, 54, 9, 11]], jnp.int32)
    np.testing.assert_array_equal(np.asarray(loaded(tokens)), np.asarray(model(tokens)))


@pytest.mark.parametrize("bad, message", [
    (dict(positions="sinusoid"), "ModelConfig.positions='sinusoid'"),
    (dict(mask="bidirectional"), "ModelConfig.mask='bidirectional'"),
    (dict(norm="batch"), "ModelConfig.norm='batch'"),
    (dict(mlp="relu"), "ModelConfig.mlp='relu'"),
    (dict(residual="post_norm"), "ModelConfig.residual='post_norm'"),
    (dict(mlp_bias="yes"), "ModelConfig.mlp_bias='yes'"),
    (dict(flavour="glm130b"), "unknown GLM variant"),
    (dict(glm_tokens={"mask": 1, "gmask": 2, "sop": 3}), "ModelConfig.glm_tokens="),
    (dict(glm_tokens={"mask": 1, "gmask": 2, "sop": 3, "eop": -4}), "glm_tokens.eop=-4"),
])
def test_bad_part_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**bad)


def test_glm_v1_runs_the_shared_decoder():
    """One attention, one cache layout, one scan body: GLM v1 is the shared DecoderLM with GLM's
    position provider, and its typed parts must be its flavour's network."""
    for name in ("chatglm6b", "glm10b"):
        model = nnx.eval_shape(lambda n=name: glm_v1.build(GLM_CONFIGS[n](), nnx.Rngs(0)))
        assert isinstance(model, decoder.DecoderLM) and isinstance(model.layers, decoder.Block)
        assert isinstance(model.layers.attn, decoder.Attention) and isinstance(model.layers.mlp, decoder.MLP)
    assert set(model.init_cache(1, 4)) == set(decoder.init_cache(model.config, 1, 4)) | {"next_position", "next_block"}
    cfg = GLM_CONFIGS["chatglm6b"]()
    with pytest.raises(ValueError, match="flavour 'chatglm' is the network"):
        glm_v1.check_config(cfg.replace(residual="pre_norm"))
    with pytest.raises(ValueError, match="build the model with models/glm_v1.py"):
        decoder.DecoderLM(cfg, rngs=nnx.Rngs(0))
