"""PEFT adapters against the `peft` library on a tiny random transformers LLaMA: ours loads there,
theirs loads here, and merged exports match."""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_fixtures import make_hf_llama, torch_logits
from medjax.checkpoint.hf_model import load_hf_model
from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.peft.config import PeftSettings
from medjax.peft.convert import convert_peft
from medjax.peft.lora import lora_modules
from medjax.peft.setup import apply_peft

import peft
import torch

IDS = np.random.default_rng(0).integers(3, 128, size=(2, 12)).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens)


def logits(model):
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef, state, jnp.asarray(IDS)))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hf_base"))
    make_hf_llama(d, seed=3)
    return d


def torch_base(base_dir):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base_dir, attn_implementation="eager")
    return model.float().eval()


def test_our_adapter_loads_in_peft_with_matching_logits(base_dir, tmp_path):
    settings = PeftSettings(method="lora", rank=4, alpha=8.0, targets="q,k,v,o,gate,up,down,lm_head")
    model = apply_peft(load_hf_model(base_dir), settings)
    for i, (_, m) in enumerate(lora_modules(model)):
        m.lora_b.set_value(0.2 * jax.random.normal(jax.random.PRNGKey(i), m.lora_b.shape))
    ours = logits(model)
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "adapter")
    save_params(ckpt, model)
    settings.save(ckpt)
    convert_peft(f"ckpt:{ckpt}", f"peft:{out}")
    assert sorted(os.listdir(out)) == ["adapter_config.json", "adapter_model.safetensors"]
    theirs_model = peft.PeftModel.from_pretrained(torch_base(base_dir), out).eval()
    theirs = torch_logits(theirs_model, IDS)
    assert np.abs(ours - logits(load_hf_model(base_dir))).max() > 1e-2  # the adapters matter
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_a_peft_made_adapter_imports_and_merges_with_matching_logits(base_dir, tmp_path):
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], use_rslora=True,
                             task_type="CAUSAL_LM")
    theirs_model = peft.get_peft_model(torch_base(base_dir), config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    theirs_model.eval()
    expected = torch_logits(theirs_model, IDS)
    adapter = str(tmp_path / "theirs")
    theirs_model.save_pretrained(adapter)

    ckpt = str(tmp_path / "ckpt")
    convert_peft(f"peft:{adapter}", f"ckpt:{ckpt}", base=f"hf:{base_dir}")
    model, _ = load_params_model(ckpt)
    assert [p for p, _ in lora_modules(model)] == [("layers", "attn", "q"), ("layers", "attn", "v"),
                                                  ("layers", "mlp", "down")]
    np.testing.assert_allclose(logits(model), expected, atol=1e-4, rtol=0)

    merged = str(tmp_path / "merged")
    convert_peft(f"peft:{adapter}", f"hf:{merged}", base=f"hf:{base_dir}", merge=True)
    np.testing.assert_allclose(logits(load_hf_model(merged)), expected, atol=1e-4, rtol=0)


def test_bad_adapter_and_conversion_requests_are_errors(base_dir, tmp_path):
    adapter = tmp_path / "bad"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "lora_alpha": 8, '
                                                 '"target_modules": ["qkv_proj"]}')
    with pytest.raises(ValueError, match=r"target_modules \['qkv_proj'\] are not layers"):
        convert_peft(f"peft:{adapter}", f"ckpt:{tmp_path / 'x'}", base=f"hf:{base_dir}")
    with pytest.raises(ValueError, match="needs --base"):
        convert_peft(f"peft:{adapter}", f"ckpt:{tmp_path / 'x'}")
    (adapter / "adapter_config.json").write_text('{"peft_type": "IA3", "target_modules": ["q_proj"]}')
    with pytest.raises(ValueError, match="only LORA"):
        convert_peft(f"peft:{adapter}", f"ckpt:{tmp_path / 'x'}", base=f"hf:{base_dir}")
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA",\n "r": 4,,}')
    with pytest.raises(ValueError, match=r"bad/adapter_config\.json: invalid JSON at line 2"):
        convert_peft(f"peft:{adapter}", f"ckpt:{tmp_path / 'x'}", base=f"hf:{base_dir}")
