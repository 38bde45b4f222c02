"""LLaMA backbone against transformers: logits, HF round trip, greedy generation, bad input."""
import json
import os

import numpy as np
import pytest

import medjax
from medjax.checkpoint.hf_model import load_hf_model
from tests.hf_fixtures import make_hf_llama, torch_logits

IDS = np.random.RandomState(0).randint(0, 128, size=(2, 24))

CONFIGS = {
    "mha_untied": dict(),
    "gqa_tied": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "gqa_theta": dict(num_key_value_heads=1, rope_theta=500000.0),
    "llama3_scaling": dict(num_key_value_heads=2, rope_theta=500000.0,
                           rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                             high_freq_factor=4.0, original_max_position_embeddings=8)),
    "explicit_head_dim": dict(num_key_value_heads=2, head_dim=16),
}


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    out = {}
    for i, (name, overrides) in enumerate(CONFIGS.items()):
        d = str(tmp_path_factory.mktemp(name))
        out[name] = (d, make_hf_llama(d, seed=i, **overrides))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers(hf_models, name):
    directory, torch_model = hf_models[name]
    ours = medjax.load("hf:" + directory).logits(IDS)
    np.testing.assert_allclose(ours, torch_logits(torch_model, IDS), atol=1e-4, rtol=0)


def test_packed_segments_do_not_interact(hf_models):
    lm = medjax.load("hf:" + hf_models["gqa_theta"][0])
    seg = np.array([[1] * 10 + [2] * 14] * 2)
    packed = lm.logits(IDS, seg)
    alone = lm.logits(IDS[:, 10:])
    np.testing.assert_allclose(packed[:, 10:], alone, atol=1e-5)


def test_round_trip_hf_ckpt_hf(hf_models, tmp_path):
    from medjax.checkpoint.conversion import convert

    directory, torch_model = hf_models["gqa_tied"]
    convert("hf:" + directory, f"ckpt:{tmp_path}/ckpt")
    convert(f"ckpt:{tmp_path}/ckpt", f"hf:{tmp_path}/hf")
    from transformers import LlamaForCausalLM

    reloaded = LlamaForCausalLM.from_pretrained(f"{tmp_path}/hf", attn_implementation="eager").eval()
    np.testing.assert_allclose(torch_logits(reloaded, IDS), torch_logits(torch_model, IDS), atol=1e-6, rtol=0)
    assert os.path.exists(f"{tmp_path}/hf/generation_config.json")


def test_bf16_and_sharded_checkpoints_load(tmp_path):
    import torch

    from transformers import LlamaForCausalLM

    make_hf_llama(str(tmp_path / "bf16"), seed=7, torch_dtype=torch.bfloat16, max_shard_size="20KB")
    assert os.path.exists(tmp_path / "bf16" / "model.safetensors.index.json")
    ours = load_hf_model(str(tmp_path / "bf16"))
    # the reference reads the same bf16 weights into fp32 (a fresh load keeps its rope buffers in fp32)
    reference = LlamaForCausalLM.from_pretrained(str(tmp_path / "bf16"), dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    expected = torch_logits(reference, IDS)
    np.testing.assert_allclose(medjax.LM(ours).logits(IDS), expected, atol=1e-4)


def test_greedy_generate_matches_transformers(hf_models):
    import torch

    directory, torch_model = hf_models["gqa_theta"]
    lm = medjax.load("hf:" + directory)
    prompts = [[1, 5, 6, 7, 8, 9], [1, 10, 11], [1] + list(range(3, 20))]
    ours = lm.generate(prompts, max_new_tokens=64, eos_id=-1)
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = (ids != 0).long()
    with torch.no_grad():
        out = torch_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=64, min_new_tokens=64,
                                   do_sample=False, eos_token_id=None, pad_token_id=0)
    assert ours == out[:, width:].tolist()


def test_cached_decoding_equals_full_recomputation(hf_models):
    lm = medjax.load("hf:" + hf_models["llama3_scaling"][0])
    prompt = [1, 17, 33, 4, 90]
    cached = lm.generate([prompt], max_new_tokens=12, eos_id=-1)[0]
    seq = list(prompt)
    for _ in range(12):
        seq.append(int(np.argmax(lm.logits(np.array([seq]))[0, -1])))
    assert cached == seq[len(prompt):]


def test_generate_stops_at_eos_and_samples_reproducibly(hf_models):
    lm = medjax.load("hf:" + hf_models["mha_untied"][0])
    greedy = lm.generate([[1, 5, 6]], max_new_tokens=8, eos_id=-1)[0]
    stopped = lm.generate([[1, 5, 6]], max_new_tokens=8, eos_id=greedy[2])[0]
    assert stopped == greedy[:3]
    a = lm.generate([[1, 5, 6]], max_new_tokens=8, temperature=1.0, top_k=5, top_p=0.9, seed=3)
    b = lm.generate([[1, 5, 6]], max_new_tokens=8, temperature=1.0, top_k=5, top_p=0.9, seed=3)
    assert a == b


def test_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        medjax.load(f"hf:{tmp_path}")


def test_unknown_model_type_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_nonexistent"}))
    with pytest.raises(ValueError, match="gpt_nonexistent"):
        medjax.load(f"hf:{tmp_path}")


def test_missing_field_is_named(hf_models, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(hf_models["mha_untied"][0], d)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["hidden_size"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KeyError, match="hidden_size"):
        medjax.load(f"hf:{d}")


def test_missing_and_misshaped_weights_are_named(hf_models, tmp_path):
    from medjax.checkpoint.hf_io import SafetensorsFile, write_safetensors

    src = hf_models["mha_untied"][0]
    tensors = {k: np.array(v) for k, v in
               ((k, SafetensorsFile(f"{src}/model.safetensors").get(k)) for k in
                SafetensorsFile(f"{src}/model.safetensors").keys())}
    import shutil

    for case in ("missing", "shape"):
        d = tmp_path / case
        shutil.copytree(src, d)
        broken = dict(tensors)
        name = "model.layers.1.mlp.up_proj.weight"
        if case == "missing":
            del broken[name]
        else:
            broken[name] = broken[name][:, :-1]
        write_safetensors(str(d / "model.safetensors"), broken)
        with pytest.raises((KeyError, ValueError), match="up_proj"):
            medjax.load(f"hf:{d}")


def test_tokenizer_larger_than_embedding_is_an_error(hf_models, tmp_path):
    import shutil

    from tests.hf_fixtures import save_llama2_tokenizer

    d = tmp_path / "m"
    shutil.copytree(hf_models["mha_untied"][0], d)
    save_llama2_tokenizer(str(d))  # 32000 pieces vs 128 embedding rows
    with pytest.raises(ValueError, match="32000"):
        medjax.load(f"hf:{d}")


def test_pytorch_bin_checkpoints_load(hf_models, tmp_path):
    import shutil

    import torch

    directory, torch_model = hf_models["mha_untied"]
    shutil.copy(os.path.join(directory, "config.json"), tmp_path / "config.json")
    torch.save(torch_model.state_dict(), tmp_path / "pytorch_model.bin")  # the original THUDM-style layout
    np.testing.assert_allclose(medjax.load(f"hf:{tmp_path}").logits(IDS), torch_logits(torch_model, IDS), atol=1e-4)


def test_remat_policies_and_bf16_compute(hf_models):
    import jax
    from flax import nnx

    from medjax.train.objectives import lm_objective

    directory = hf_models["gqa_theta"][0]
    batch = {"tokens": IDS, "targets": np.roll(IDS, -1, 1), "loss_mask": np.ones(IDS.shape, np.float32),
             "segment_ids": np.ones(IDS.shape, np.int32), "positions": np.tile(np.arange(IDS.shape[1]), (2, 1))}

    def loss_and_grads(**overrides):
        graphdef, state = nnx.split(load_hf_model(directory, **overrides))
        fn = jax.value_and_grad(lambda s: lm_objective(nnx.merge(graphdef, s), batch, {})[0])
        return jax.jit(fn)(state)

    base_loss, base_grads = loss_and_grads()
    for policy in ("full", "dots"):
        loss, grads = loss_and_grads(remat=policy)
        np.testing.assert_allclose(loss, base_loss, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(base_grads)):
            np.testing.assert_allclose(a, b, atol=1e-5)
    bf16_loss, bf16_grads = loss_and_grads(dtype="bfloat16")
    assert jax.tree.leaves(bf16_grads)[0].dtype == np.float32  # fp32 master weights, bf16 compute
    assert abs(float(bf16_loss) - float(base_loss)) < 0.05 * float(base_loss)
