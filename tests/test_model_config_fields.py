"""config.json fields: every accepted model_type refuses the fields whose other values change the network
and that medjax does not implement, and a wrong type or a null is an error naming the file and the field."""
import json

import pytest

from medjax.checkpoint.hf_model import config_from_hf_dir
from medjax.models import chatglm_original, glm, glm_v1, llama
from medjax.models.config import ModelConfig

SRC = "m/config.json"
LLAMA = llama.config_to_hf(ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
                                       num_heads=4, num_kv_heads=2))
GLM = {"model_type": "glm", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
       "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
# THUDM's ChatGLM2/3 / GLM-4 config.json, every published field, tiny shapes
CHATGLM_ORIGINAL = {
    "model_type": "chatglm", "architectures": ["ChatGLMModel"], "padded_vocab_size": 96, "hidden_size": 32,
    "num_layers": 2, "num_attention_heads": 4, "kv_channels": 8, "ffn_hidden_size": 48, "seq_length": 64,
    "multi_query_attention": True, "multi_query_group_num": 2, "add_qkv_bias": True, "rmsnorm": True,
    "apply_residual_connection_post_layernorm": False, "post_layer_norm": True, "add_bias_linear": False,
    "apply_query_key_layer_scaling": True, "attention_softmax_in_fp32": True, "fp32_residual_connection": False,
    "bias_dropout_fusion": True, "quantization_bit": 0, "pre_seq_len": None, "prefix_projection": False,
    "hidden_dropout": 0.0, "attention_dropout": 0.0, "classifier_dropout": None, "original_rope": True,
    "rope_ratio": 500, "layernorm_epsilon": 1.5625e-07, "eos_token_id": [2, 3], "pad_token_id": 0,
    "torch_dtype": "bfloat16", "use_cache": True, "tie_word_embeddings": False}
CHATGLM_6B = {
    "model_type": "chatglm", "architectures": ["ChatGLMModel"], "vocab_size": 64, "hidden_size": 32,
    "num_layers": 2, "num_attention_heads": 4, "inner_hidden_size": 48, "max_sequence_length": 32,
    "position_encoding_2d": True, "quantization_bit": 0, "pre_seq_len": None, "prefix_projection": False,
    "layernorm_epsilon": 1e-5, "mask_token_id": 50, "gmask_token_id": 51, "bos_token_id": 54, "eos_token_id": 55,
    "pad_token_id": 3, "torch_dtype": "float16", "use_cache": True}
GLM_10B = {
    "model_type": "glm", "architectures": ["GLMModel"], "vocab_size": 64, "hidden_size": 32, "num_layers": 2,
    "num_attention_heads": 4, "max_sequence_length": 32, "block_position_encoding": True, "relative_encoding": False,
    "attention_scale": 1.0, "spell_length": None, "spell_func": "lstm", "output_predict": True,
    "attention_dropout_prob": 0.1, "embedding_dropout_prob": 0.1, "output_dropout_prob": 0.1,
    "mask_token_id": 50, "gmask_token_id": 51, "sop_token_id": 54, "eop_token_id": 55}
BASES = {"llama": (llama, LLAMA), "glm": (glm, GLM), "glm4": (glm, {**GLM, "model_type": "glm4"}),
         "chatglm_original": (chatglm_original, CHATGLM_ORIGINAL), "chatglm6b": (glm_v1, CHATGLM_6B),
         "glm10b": (glm_v1, GLM_10B)}
QUANTIZED = {"quant_method": "gptq", "bits": 4}


def _load(family: str, **changes) -> ModelConfig:
    module, base = BASES[family]
    return module.config_from_hf({**base, **changes}, source=SRC)


def test_todays_configs_load():
    import transformers

    tiny = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2)
    for name, cls, module in (("llama", transformers.LlamaConfig, llama), ("glm", transformers.GlmConfig, glm),
                              ("glm4", transformers.Glm4Config, glm)):
        cfg = module.config_from_hf(cls(**tiny).to_dict(), source=SRC)  # what transformers writes
        assert (cfg.family, cfg.num_kv_heads) == (name, 2)
    assert _load("chatglm_original").rope_theta == 10000.0 * 500
    assert _load("chatglm6b").extra["flavour"] == "chatglm" and _load("glm10b").extra["flavour"] == "glm"
    # the older rope fields, and llama3 scaling whose original length defaults to max_position_embeddings
    old = _load("llama", rope_parameters=None, rope_theta=5e5, rope_scaling={"type": "linear", "factor": 2.0})
    assert (old.rope_theta, old.rope_scaling) == (5e5, {"rope_type": "linear", "factor": 2.0})
    llama3 = _load("llama", rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0}, max_position_embeddings=256)
    assert llama3.rope_scaling["original_max_position_embeddings"] == 256
    assert _load("glm", rope_parameters={"partial_rotary_factor": 0.25}).partial_rotary_factor == 0.25


REFUSED = [
    ("llama", "mlp_bias", True), ("llama", "hidden_act", "gelu"), ("llama", "partial_rotary_factor", 0.5),
    ("llama", "rope_parameters", {"rope_type": "yarn", "factor": 4.0}),
    ("llama", "rope_scaling", {"type": "dynamic", "factor": 2.0}),
    ("llama", "rope_parameters", {"full_attention": {"rope_type": "default"}}),
    ("llama", "quantization_config", QUANTIZED),
    ("glm", "hidden_act", "gelu"), ("glm4", "rope_parameters", {"rope_type": "longrope"}),
    ("glm4", "quantization_config", QUANTIZED),
    ("chatglm_original", "rmsnorm", False), ("chatglm_original", "apply_residual_connection_post_layernorm", True),
    ("chatglm_original", "post_layer_norm", False), ("chatglm_original", "add_bias_linear", True),
    ("chatglm_original", "quantization_bit", 4), ("chatglm_original", "pre_seq_len", 128),
    ("chatglm6b", "position_encoding_2d", False), ("chatglm6b", "quantization_bit", 8),
    ("chatglm6b", "pre_seq_len", 16),
    ("glm10b", "block_position_encoding", False), ("glm10b", "relative_encoding", True),
    ("glm10b", "attention_scale", 2.0), ("glm10b", "spell_length", 4),
]


@pytest.mark.parametrize("family,field,value", REFUSED, ids=[f"{f}-{k}" for f, k, _ in REFUSED])
def test_math_changing_fields_we_do_not_implement_are_refused(family, field, value):
    with pytest.raises(ValueError, match=f"^{SRC}: .*not supported") as err:
        _load(family, **{field: value})
    assert field in str(err.value)  # the field itself, or the key inside it ("rope_type=... inside rope_parameters")


def test_partial_rotary_inside_rope_parameters_is_refused_for_llama():
    with pytest.raises(ValueError, match=r"partial_rotary_factor=0\.5 is not supported.*inside rope_parameters"):
        _load("llama", rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5})


WRONG = [("llama", "hidden_size", "512"), ("llama", "num_hidden_layers", 2.5), ("llama", "rms_norm_eps", "x"),
         ("llama", "rms_norm_eps", None), ("llama", "vocab_size", None), ("llama", "num_attention_heads", True),
         ("llama", "tie_word_embeddings", "yes"), ("llama", "eos_token_id", "</s>"), ("llama", "head_dim", 0),
         ("glm", "intermediate_size", "48"), ("glm4", "rms_norm_eps", -1.0),
         ("chatglm_original", "rope_ratio", "500"), ("chatglm_original", "multi_query_group_num", 1.5),
         ("chatglm_original", "layernorm_epsilon", None), ("chatglm6b", "inner_hidden_size", "48"),
         ("chatglm6b", "gmask_token_id", -1), ("glm10b", "num_layers", 2.0), ("glm10b", "sop_token_id", "x")]


@pytest.mark.parametrize("family,field,value", WRONG, ids=[f"{f}-{k}-{v!r}" for f, k, v in WRONG])
def test_wrong_types_and_nulls_name_the_file_and_field(family, field, value):
    with pytest.raises(ValueError, match=f"^{SRC}: {field}="):
        _load(family, **{field: value})


def test_rope_fields_and_shapes_that_disagree_are_named():
    with pytest.raises(ValueError, match=r"factor='2' is not a positive number.*inside rope_scaling"):
        _load("llama", rope_scaling={"rope_type": "linear", "factor": "2"})
    with pytest.raises(ValueError, match="num_attention_heads=4 is not a multiple of num_key_value_heads=3"):
        _load("llama", num_key_value_heads=3)
    with pytest.raises(ValueError, match="hidden_size=30 is not a multiple of num_attention_heads=4"):
        _load("chatglm6b", hidden_size=30)


def test_a_config_json_on_disk_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA, "hidden_size": "32"}))
    with pytest.raises(ValueError, match=f"{tmp_path / 'config.json'}: hidden_size='32'"):
        config_from_hf_dir(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({**LLAMA, "model_type": 5}))
    with pytest.raises(ValueError, match="model_type=5 is not a string"):
        config_from_hf_dir(str(tmp_path))


def test_model_config_names_a_wrong_field():
    with pytest.raises(ValueError, match=r"ModelConfig.hidden_size='512'"):
        ModelConfig(hidden_size="512")
    with pytest.raises(ValueError, match=r"ModelConfig.norm_eps=None"):
        ModelConfig(norm_eps=None)
