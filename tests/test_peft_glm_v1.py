"""PEFT adapters for GLM v1, whose HF layout fuses q, k and v into one query_key_value Linear: our
separate q/k/v adapters export as one block-diagonal adapter on it, which `peft` merges onto plain
torch Linears named like ChatGLM-6B's / GLM-10B's exactly as we merge; it imports back; a general
fused adapter (as DoctorGLM's) imports only by merging."""
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from medjax.checkpoint.hf_model import save_hf_model
from medjax.models import glm_v1
from medjax.peft.adapter_io import export_adapter, import_adapter
from medjax.peft.config import PeftSettings
from medjax.peft.convert import convert_peft
from medjax.peft.lora import lora_modules
from medjax.peft.setup import apply_peft, backbone_of

import peft
import torch

SPECIAL = {"mask_token_id": 50, "gmask_token_id": 51, "smask_token_id": 52}
HF = {
    "chatglm": {"model_type": "chatglm", "vocab_size": 64, "hidden_size": 32, "num_layers": 2,
                "num_attention_heads": 4, "inner_hidden_size": 48, "max_sequence_length": 32, "bos_token_id": 54,
                "eos_token_id": 55, **SPECIAL},
    "glm": {"model_type": "glm", "vocab_size": 64, "hidden_size": 32, "num_layers": 2, "num_attention_heads": 4,
            "max_sequence_length": 32, "block_position_encoding": True, "sop_token_id": 54, "eop_token_id": 55,
            **SPECIAL},
}
LINEARS = ("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")


def base_model(flavour):
    return glm_v1.build(glm_v1.config_from_hf(HF[flavour]), nnx.Rngs(0))


def hf_tensors(model) -> dict:
    params = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model)))
    return glm_v1.export_params(params, model.config)


def torch_linears(tensors: dict):
    """A torch module tree holding only the decoder Linears, under their original names."""
    root = torch.nn.Module()
    for name, w in tensors.items():
        if not name.endswith(".weight") or not any(f".{n}." in name for n in LINEARS):
            continue
        parent = root
        *path, leaf, _ = name.split(".")
        for key in path:
            if not hasattr(parent, key):
                parent.add_module(key, torch.nn.Module())
            parent = getattr(parent, key)
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(w)))
            linear.bias.copy_(torch.from_numpy(np.array(tensors[name[: -len("weight")] + "bias"])))
        parent.add_module(leaf, linear)
    return root


def peft_merged(base_tensors: dict, adapter_dir: str) -> dict:
    """`peft` loads the adapter onto the torch Linears and merges it: name -> merged weight."""
    config = peft.LoraConfig.from_pretrained(adapter_dir)
    config.task_type = None  # a plain module, not a transformers causal LM
    model = peft.PeftModel.from_pretrained(torch_linears(base_tensors), adapter_dir, config=config)
    return {k: v.numpy() for k, v in model.merge_and_unload().state_dict().items()}


def randomise(model, std=0.3):
    for i, (_, m) in enumerate(lora_modules(model)):
        m.lora_a.set_value(std * jax.random.normal(jax.random.PRNGKey(2 * i), m.lora_a.shape))
        m.lora_b.set_value(std * jax.random.normal(jax.random.PRNGKey(2 * i + 1), m.lora_b.shape))


@pytest.mark.parametrize("flavour,targets,rslora", [("chatglm", "attn,mlp", False), ("chatglm", "q,v,o", True),
                                                    ("glm", "attn,mlp", False)])
def test_separate_qkv_adapters_export_as_one_fused_adapter_that_peft_merges_like_us(flavour, targets, rslora,
                                                                                    tmp_path):
    base = base_model(flavour)
    base_tensors = hf_tensors(base)
    settings = PeftSettings(method="lora", rank=2, alpha=4.0, rslora=rslora, targets=targets)
    model = apply_peft(nnx.clone(base), settings)
    randomise(model)
    out = str(tmp_path / "adapter")
    export_adapter(model, settings, out)
    with open(os.path.join(out, "adapter_config.json")) as f:
        ac = json.load(f)
    assert ac["rank_pattern"] == {"query_key_value": 6} and "query_key_value" in ac["target_modules"]
    ours = hf_tensors(backbone_of(model))
    theirs = peft_merged(base_tensors, out)
    qkv = [k for k in theirs if "query_key_value.weight" in k]
    assert len(qkv) == 2 and np.abs(ours[qkv[0]] - base_tensors[qkv[0]]).max() > 1e-2
    for name, w in theirs.items():
        np.testing.assert_allclose(w, ours[name], atol=1e-5, rtol=0, err_msg=name)

    back, back_settings = import_adapter(base_model(flavour), out)  # block-diagonal: splits exactly
    assert (back_settings.rank, back_settings.alpha, back_settings.rslora) == (2, 4.0, rslora)
    assert [p for p, _ in lora_modules(back)] == [p for p, _ in lora_modules(model)]
    for (path, m), (_, m0) in zip(lora_modules(back), lora_modules(model)):
        np.testing.assert_array_equal(np.asarray(m.lora_a[...]), np.asarray(m0.lora_a[...]), err_msg=str(path))
        np.testing.assert_array_equal(np.asarray(m.lora_b[...]), np.asarray(m0.lora_b[...]), err_msg=str(path))


def test_a_general_fused_adapter_imports_only_by_merging(tmp_path):
    base = base_model("chatglm")
    base_dir = str(tmp_path / "base")
    save_hf_model(base, base_dir)
    base_tensors = hf_tensors(base)
    # DoctorGLM-style: rank 8 on query_key_value, trained as one layer (B random, not block-diagonal)
    theirs = peft.get_peft_model(torch_linears(base_tensors),
                                 peft.LoraConfig(r=8, lora_alpha=16, target_modules=["query_key_value", "dense"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    adapter = str(tmp_path / "doctorglm")
    theirs.save_pretrained(adapter)
    adapter_bin = str(tmp_path / "doctorglm_bin")  # older ChatGLM adapters ship a pickled adapter_model.bin
    theirs.save_pretrained(adapter_bin, safe_serialization=False)
    assert os.listdir(adapter_bin) and "adapter_model.bin" in os.listdir(adapter_bin)
    with pytest.raises(ValueError, match=r"layers\.0\.attention\.query_key_value\.lora_B\.weight: .*--merge"):
        import_adapter(base_model("chatglm"), adapter)
    merged_dir = str(tmp_path / "merged")
    convert_peft(f"peft:{adapter}", f"hf:{merged_dir}", base=f"hf:{base_dir}", merge=True)
    ours = load_file(os.path.join(merged_dir, "model.safetensors"))
    expected = {k: v.numpy() for k, v in theirs.merge_and_unload().state_dict().items()}
    assert np.abs(expected["transformer.layers.1.attention.query_key_value.weight"]
                  - base_tensors["transformer.layers.1.attention.query_key_value.weight"]).max() > 1e-2
    for name, w in expected.items():
        np.testing.assert_allclose(w, ours[name], atol=1e-5, rtol=0, err_msg=name)
    convert_peft(f"peft:{adapter_bin}", f"hf:{tmp_path}/merged_bin", base=f"hf:{base_dir}", merge=True)
    from_bin = load_file(os.path.join(tmp_path, "merged_bin", "model.safetensors"))
    assert all(np.array_equal(from_bin[name], ours[name]) for name in ours)
