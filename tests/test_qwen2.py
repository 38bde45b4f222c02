"""Qwen2 / Qwen2.5 against transformers (every parameter random, q/k/v biases too): logits with a tied
and an untied head, greedy generation, HF round trip; its config fields (sliding window refused),
LoRA roles and bias axes; its chat template against Qwen2.5's own."""
import json
import pathlib

import numpy as np
import pytest

import medjax
from medjax.checkpoint.hf_model import config_from_hf_dir
from medjax.models import qwen2
from tests.hf_fixtures import TINY, randomize_, torch_logits

IDS = np.random.RandomState(2).randint(3, 128, size=(2, 12))
QWEN2 = {**TINY, "num_key_value_heads": 2, "rope_theta": 1e6}  # GQA; Qwen2's theta, not LLaMA's default


def make_hf_qwen2(directory: str, tied: bool, seed: int = 0):
    """A random Qwen2ForCausalLM (eager attention) written to `directory`; returns the torch model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**QWEN2, tie_word_embeddings=tied)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = randomize_(Qwen2ForCausalLM(cfg), seed).eval()
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module", params=["tied", "untied"])
def hf_qwen2(request, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp(f"qwen2_{request.param}"))
    torch_model = make_hf_qwen2(directory, tied=request.param == "tied")
    return directory, torch_model, medjax.load("hf:" + directory)


def test_logits_match_transformers(hf_qwen2):
    directory, torch_model, lm = hf_qwen2
    hf = json.loads(pathlib.Path(directory, "config.json").read_text())
    assert lm.config.tie_embeddings == hf["tie_word_embeddings"] and lm.config.attention_bias
    assert lm.config.rope_theta == 1e6 and lm.config.num_kv_heads == 2
    # the biases are there and not the initial value (randomize_), so a lost bias could not pass
    assert float(torch_model.model.layers[0].self_attn.k_proj.bias.detach().std()) > 0.1
    np.testing.assert_allclose(lm.logits(IDS), torch_logits(torch_model, IDS), atol=1e-4, rtol=0)


@pytest.mark.parametrize("hf_qwen2", ["untied"], indirect=True)  # once: the heads differ only in logits
def test_greedy_generate_matches_transformers(hf_qwen2):
    import torch

    _, torch_model, lm = hf_qwen2
    prompts = [[5, 6, 7, 8, 9], [10, 11], list(range(3, 12))]  # left-padded to different widths
    ours = lm.generate(prompts, max_new_tokens=10, eos_id=-1)
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    with torch.no_grad():
        out = torch_model.generate(input_ids=ids, attention_mask=(ids != 0).long(), max_new_tokens=10,
                                   min_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert ours == out[:, width:].tolist()


def test_export_is_qwen2_and_round_trips_exactly(hf_qwen2, tmp_path):
    from flax import nnx
    from transformers import Qwen2ForCausalLM

    _, torch_model, lm = hf_qwen2
    lm.save(f"hf:{tmp_path}")
    hf = json.loads((tmp_path / "config.json").read_text())
    assert (hf["model_type"], hf["architectures"], hf["use_sliding_window"]) == ("qwen2", ["Qwen2ForCausalLM"],
                                                                               False)
    reloaded = Qwen2ForCausalLM.from_pretrained(str(tmp_path), attn_implementation="eager").eval()
    assert reloaded.config.tie_word_embeddings == lm.config.tie_embeddings
    np.testing.assert_array_equal(torch_logits(reloaded, IDS), torch_logits(torch_model, IDS))
    assert config_from_hf_dir(str(tmp_path)) == lm.config
    again = medjax.load(f"hf:{tmp_path}")
    ours, theirs = (dict(nnx.to_flat_state(nnx.state(m.model, nnx.Param))) for m in (lm, again))
    assert ours.keys() == theirs.keys() and any("bias" in map(str, path) for path in ours)
    for path in ours:
        np.testing.assert_array_equal(np.asarray(theirs[path][...]), np.asarray(ours[path][...]), err_msg=path)


PUBLISHED = {  # Qwen2.5-0.5B-Instruct's config.json fields, at TINY's sizes
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "max_position_embeddings": 32768, "max_window_layers": 21, "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 128}


def test_published_fields_load_and_sliding_window_is_refused_by_name():
    cfg = qwen2.config_from_hf(PUBLISHED)
    assert (cfg.family, cfg.attention_bias, cfg.sliding_window, cfg.tie_embeddings) == ("qwen2", True, None, True)
    # transformers' Qwen2 has q/k/v biases whatever attention_bias says, and no MLP bias whatever mlp_bias says
    assert qwen2.config_from_hf({**PUBLISHED, "attention_bias": False, "mlp_bias": True}) == cfg
    with pytest.raises(ValueError, match=r"q/config.json: use_sliding_window=True is not supported"):
        qwen2.config_from_hf({**PUBLISHED, "use_sliding_window": True}, source="q/config.json")
    with pytest.raises(ValueError, match=r"q/config.json: layer_types=.* is not supported"):
        qwen2.config_from_hf({**PUBLISHED, "layer_types": ["full_attention", "sliding_attention"]},
                             source="q/config.json")
    with pytest.raises(ValueError, match="use_sliding_window=.*not true or false"):
        qwen2.config_from_hf({**PUBLISHED, "use_sliding_window": "no"})
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}  # Qwen2.5's long context
    with pytest.raises(ValueError, match="type='yarn' is not supported"):
        qwen2.config_from_hf({**PUBLISHED, "rope_scaling": yarn})


@pytest.mark.parametrize("hf_qwen2", ["untied"], indirect=True)
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_lora_roles_and_bias_axes(hf_qwen2, method):
    """LoRA / QLoRA "attn" finds q, k, v and o; their HF names are real Linear modules of
    Qwen2ForCausalLM (so PEFT adapter files name them right); the q/k/v biases stay beside the
    (quantised) kernel, shard with its output axis and are not weight-decayed."""
    from flax import nnx

    from medjax.parallel.mesh import variable_axes
    from medjax.parallel.rules import logical_to_spec
    from medjax.peft.adapter_io import hf_modules
    from medjax.peft.config import PeftSettings
    from medjax.peft.setup import abstract_peft_model
    from medjax.train.optimizer import decays

    _, torch_model, lm = hf_qwen2
    state = nnx.state(abstract_peft_model(lm.config, PeftSettings(method=method, targets="attn")))
    flat = {tuple(map(str, path)): var for path, var in nnx.to_flat_state(state)}
    assert {path[-2] for path in flat if path[-1] == "lora_a"} == {"q", "k", "v", "o"}
    names = hf_modules(lm.config)
    for role in ("q", "k", "v", "o"):
        linear = torch_model.get_submodule(names[("layers", "attn", role)].format(i=0))
        lora_a, lora_b = (flat[("layers", "attn", role, f"lora_{x}")] for x in "ab")
        assert tuple(linear.weight.shape) == (lora_b.shape[-1], lora_a.shape[1])
        assert (linear.bias is not None) == (role != "o")
        assert (("layers", "attn", role, "base", "bias") in flat) == (role != "o")
    for role, axis in (("q", "q_heads"), ("k", "kv_heads"), ("v", "kv_heads")):
        bias = ("layers", "attn", role, "base", "bias")
        lora_b = ("layers", "attn", role, "lora_b")
        assert variable_axes(bias, flat[bias]) == ("layers", axis)
        assert logical_to_spec(variable_axes(bias, flat[bias]))[-1] == logical_to_spec(
            variable_axes(lora_b, flat[lora_b]))[-1] == "tensor"
        assert decays(lora_b, flat[lora_b]) and not decays(bias, flat[bias])


DIALOGUE = [{"role": "user", "content": "Fever?"}, {"role": "assistant", "content": "Rest."},
            {"role": "user", "content": "How long?"}]
# The non-tool branch of Qwen2.5-Instruct's tokenizer_config.json chat_template
QWEN25_JINJA = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


@pytest.mark.parametrize("system", [None, "Be brief."])
def test_chat_template_renders_as_qwen25s_own(system):
    from transformers.utils.chat_template_utils import render_jinja_template

    from medjax.data import templates

    assert templates.default_template(None, "qwen2").name == "qwen2"
    dialogue = ([{"role": "system", "content": system}] if system else []) + DIALOGUE
    rendered, _ = render_jinja_template([dialogue], chat_template=QWEN25_JINJA, add_generation_prompt=True)
    assert templates.render_prompt(dialogue, "qwen2") == rendered[0]
