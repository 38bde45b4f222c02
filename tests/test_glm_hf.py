"""GLM / GLM-4 (transformers GlmForCausalLM, Glm4ForCausalLM): logits and greedy-generation parity,
HF round trip, and the original ChatGLM2/3 / GLM-4 layout conversion. Tiny random models, fp32."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import torch
import transformers

import medjax  # noqa: E402
from medjax.checkpoint.hf_io import write_safetensors  # noqa: E402
from medjax.checkpoint.hf_model import config_from_hf_dir  # noqa: E402

TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=128, pad_token_id=0, eos_token_id=95,
            bos_token_id=1, rms_norm_eps=1e-5)
IDS = np.array([[5, 17, 33, 2, 81, 60, 7, 44, 12, 90], [3, 9, 27, 81, 43, 11, 70, 66, 29, 30]], np.int64)


def _randomize(model, seed: int):
    """Every parameter random, norms around 1 and biases non-zero, so no mapping error can hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if "norm" in name else 0.3 * noise)
    return model


def _hf_model(family: str, seed: int = 0):
    if family == "glm":
        cfg = transformers.GlmConfig(**TINY)
        model = transformers.GlmForCausalLM(cfg)
    else:
        cfg = transformers.Glm4Config(**TINY)
        model = transformers.Glm4ForCausalLM(cfg)
    return _randomize(model.float().eval(), seed)


def _hf_logits(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(ids)).logits.float().numpy()


@pytest.fixture(scope="module", params=["glm", "glm4"])
def family_dir(request, tmp_path_factory):
    model = _hf_model(request.param)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    return request.param, model, str(path)


def test_logits_match_transformers(family_dir):
    family, hf, path = family_dir
    lm = medjax.load(f"hf:{path}")
    assert lm.config.family == family and lm.config.post_norms == (family == "glm4")
    np.testing.assert_allclose(lm.logits(IDS), _hf_logits(hf, IDS), atol=1e-4, rtol=0)


def test_round_trip_keeps_logits(family_dir, tmp_path):
    _, hf, path = family_dir
    lm = medjax.load(f"hf:{path}")
    lm.save(f"hf:{tmp_path}")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).float().eval()
    np.testing.assert_allclose(_hf_logits(reloaded, IDS), _hf_logits(hf, IDS), atol=1e-5, rtol=0)
    np.testing.assert_allclose(medjax.load(f"hf:{tmp_path}").logits(IDS), lm.logits(IDS), atol=1e-6, rtol=0)


def test_greedy_generation_matches_transformers(family_dir):
    _, hf, path = family_dir
    lm = medjax.load(f"hf:{path}")
    ours = lm.generate(IDS[:, :6], max_new_tokens=8, temperature=0.0)
    with torch.no_grad():
        theirs = hf.generate(torch.as_tensor(IDS[:, :6]), max_new_tokens=8, do_sample=False,
                             eos_token_id=TINY["eos_token_id"], pad_token_id=0)[:, 6:].tolist()
    for row_ours, row_theirs in zip(ours, theirs):
        assert row_ours == row_theirs[: len(row_ours)]
        assert len(row_ours) == 8 or row_ours[-1] == TINY["eos_token_id"]


# -- THUDM's original layout (ChatGLM2/3, GLM-4-9B) -------------------------------------------

def _write_original_layout(hf_model, directory: str) -> None:
    """The inverse of the conversion, written independently: transformers Glm -> THUDM names/fusions."""
    sd = {k: v.numpy() for k, v in hf_model.state_dict().items()}
    c = hf_model.config
    out = {"transformer.embedding.word_embeddings.weight": sd["model.embed_tokens.weight"],
           "transformer.encoder.final_layernorm.weight": sd["model.norm.weight"],
           "transformer.output_layer.weight": sd["lm_head.weight"],
           "transformer.rotary_pos_emb.inv_freq": np.ones(4, np.float32)}
    for i in range(c.num_hidden_layers):
        src, dst = f"model.layers.{i}.", f"transformer.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"self_attention.query_key_value.{kind}"] = np.concatenate(
                [sd[src + f"self_attn.{r}_proj.{kind}"] for r in "qkv"], axis=0)
        out[dst + "self_attention.dense.weight"] = sd[src + "self_attn.o_proj.weight"]
        out[dst + "mlp.dense_h_to_4h.weight"] = sd[src + "mlp.gate_up_proj.weight"]
        out[dst + "mlp.dense_4h_to_h.weight"] = sd[src + "mlp.down_proj.weight"]
        out[dst + "input_layernorm.weight"] = sd[src + "input_layernorm.weight"]
        out[dst + "post_attention_layernorm.weight"] = sd[src + "post_attention_layernorm.weight"]
    write_safetensors(os.path.join(directory, "model.safetensors"), out)
    config = {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "num_layers": c.num_hidden_layers,
              "padded_vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
              "ffn_hidden_size": c.intermediate_size, "kv_channels": c.head_dim,
              "num_attention_heads": c.num_attention_heads, "multi_query_attention": True,
              "multi_query_group_num": c.num_key_value_heads, "layernorm_epsilon": c.rms_norm_eps,
              "rmsnorm": True, "add_qkv_bias": True, "add_bias_linear": False, "post_layer_norm": True,
              "apply_residual_connection_post_layernorm": False, "original_rope": True, "rope_ratio": 1,
              "seq_length": 128, "eos_token_id": 95, "pad_token_id": 0}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)


def test_original_layout_converts_and_matches(tmp_path):
    from medjax.checkpoint.conversion import convert

    hf = _hf_model("glm", seed=3)
    orig, out = tmp_path / "orig", tmp_path / "out"
    orig.mkdir()
    _write_original_layout(hf, str(orig))
    expected = _hf_logits(hf, IDS)
    np.testing.assert_allclose(medjax.load(f"hf:{orig}").logits(IDS), expected, atol=1e-4, rtol=0)
    convert(f"hf:{orig}", f"hf:{out}")
    converted = transformers.AutoModelForCausalLM.from_pretrained(out).float().eval()
    np.testing.assert_allclose(_hf_logits(converted, IDS), expected, atol=1e-5, rtol=0)


# -- bad input ---------------------------------------------------------------------------------

def _write_config(directory, config: dict) -> str:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return str(directory)


def test_unknown_chatglm_variant_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown GLM variant"):
        config_from_hf_dir(_write_config(tmp_path, {"model_type": "chatglm", "hidden_size": 32}))


def test_missing_field_is_named(tmp_path):
    cfg = {"model_type": "chatglm", "padded_vocab_size": 96, "hidden_size": 32, "num_layers": 2,
           "num_attention_heads": 4, "kv_channels": 8}
    with pytest.raises(KeyError, match="ffn_hidden_size"):
        config_from_hf_dir(_write_config(tmp_path / "a", cfg))
    with pytest.raises(KeyError, match="num_attention_heads"):
        config_from_hf_dir(_write_config(tmp_path / "b", {"model_type": "glm4", "vocab_size": 8}))


def test_unsupported_original_flag_is_named(tmp_path):
    cfg = {"model_type": "chatglm", "multi_query_group_num": 2, "rmsnorm": False}
    with pytest.raises(ValueError, match="rmsnorm"):
        config_from_hf_dir(_write_config(tmp_path, cfg))
