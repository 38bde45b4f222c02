"""Mistral against transformers on sequences longer than its sliding window: logits, KV-cache
decoding, greedy generation, HF round trip, packed documents (behind a soft prompt too); that it
shares LLaMA's parameter names, axes and adapter names; its config fields and chat template."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import medjax
from medjax.checkpoint.hf_model import abstract_model, config_from_hf_dir
from medjax.models import llama, mistral
from medjax.models.config import ModelConfig
from tests.hf_fixtures import TINY, randomize_, torch_logits

WINDOW = 8
IDS = np.random.RandomState(1).randint(3, 128, size=(2, 24))  # T = 3 windows


def make_hf_mistral(directory: str, seed: int = 0):
    """A random GQA MistralForCausalLM (eager attention) written to `directory`; returns the torch model."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(**{**TINY, "num_key_value_heads": 2, "sliding_window": WINDOW})
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = randomize_(MistralForCausalLM(cfg), seed).eval()
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def hf_mistral(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("mistral"))
    return directory, make_hf_mistral(directory), medjax.load("hf:" + directory)


def test_logits_match_transformers_beyond_the_window(hf_mistral):
    directory, torch_model, lm = hf_mistral
    expected = torch_logits(torch_model, IDS)
    np.testing.assert_allclose(lm.logits(IDS), expected, atol=1e-4, rtol=0)
    # the window must matter here, or this test could not tell sliding from plain causal attention
    torch_model.config.sliding_window = None
    try:
        full = torch_logits(torch_model, IDS)
    finally:
        torch_model.config.sliding_window = WINDOW
    np.testing.assert_allclose(full[:, :WINDOW], expected[:, :WINDOW], atol=1e-5)
    assert np.abs(full[:, WINDOW:] - expected[:, WINDOW:]).min(axis=-1).max() > 1e-2


def test_cached_prefill_and_decode_equal_full_logits(hf_mistral):
    _, _, lm = hf_mistral
    model, t, prefill = lm.model, IDS.shape[1], 10
    full = lm.logits(IDS)
    ids = jnp.asarray(IDS, jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), ids.shape)
    segments = jnp.ones_like(ids)
    cache = model.init_cache(ids.shape[0], t)
    assert cache["positions"].shape == ids.shape
    step = jax.jit(lambda tok, pos, seg, cache: model(tok, pos, seg, cache=cache))
    logits, cache = step(ids[:, :prefill], positions[:, :prefill], segments[:, :prefill], cache)
    out = [logits]
    for i in range(prefill, t):  # one decode step at a time, past the window
        logits, cache = step(ids[:, i:i + 1], positions[:, i:i + 1], segments[:, i:i + 1], cache)
        out.append(logits)
    np.testing.assert_allclose(np.concatenate(out, axis=1), full, atol=1e-5)


def test_greedy_generate_matches_transformers(hf_mistral):
    import torch

    _, torch_model, lm = hf_mistral
    prompts = [[1, 5, 6, 7, 8, 9], [1, 10, 11], [1] + list(range(3, 14))]  # left-padded to different widths
    ours = lm.generate(prompts, max_new_tokens=24, eos_id=-1)  # prompt + 24 tokens > 3 windows
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    with torch.no_grad():
        out = torch_model.generate(input_ids=ids, attention_mask=(ids != 0).long(), max_new_tokens=24,
                                   min_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert ours == out[:, width:].tolist()


def test_export_is_mistral_and_transformers_reads_it(hf_mistral, tmp_path):
    from transformers import MistralForCausalLM

    _, torch_model, lm = hf_mistral
    lm.save(f"hf:{tmp_path}")
    hf = json.loads((tmp_path / "config.json").read_text())
    assert (hf["model_type"], hf["architectures"], hf["sliding_window"]) == ("mistral", ["MistralForCausalLM"],
                                                                             WINDOW)
    reloaded = MistralForCausalLM.from_pretrained(str(tmp_path), attn_implementation="eager").eval()
    np.testing.assert_array_equal(torch_logits(reloaded, IDS), torch_logits(torch_model, IDS))
    assert config_from_hf_dir(str(tmp_path)) == lm.config


def test_packed_documents_see_what_they_see_alone(hf_mistral):
    _, _, lm = hf_mistral
    seg = np.array([[1] * 10 + [2] * 14] * 2)  # both documents longer than the window
    packed = lm.logits(IDS, seg)
    np.testing.assert_allclose(packed[:, :10], lm.logits(IDS[:, :10]), atol=1e-5)
    np.testing.assert_allclose(packed[:, 10:], lm.logits(IDS[:, 10:]), atol=1e-5)


def test_null_window_is_plain_causal_and_bad_windows_are_named(tmp_path):
    hf = {"model_type": "mistral", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": None}
    cfg = mistral.config_from_hf(hf)
    assert (cfg.family, cfg.sliding_window) == ("mistral", None)
    absent = {k: v for k, v in hf.items() if k != "sliding_window"}
    assert mistral.config_from_hf(absent).sliding_window == 4096  # MistralConfig's default, not "none"
    assert "positions" not in abstract_model(cfg).init_cache(1, 4)  # the causal path carries nothing extra
    assert mistral.config_to_hf(cfg)["sliding_window"] is None
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="sliding_window"):
            mistral.config_from_hf({**hf, "sliding_window": bad}, source="m/config.json")


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_parameters_adapters_and_hf_names_are_llama_s(method):
    """Same parameter paths and logical axes (so the same sharding rules and LoRA/QLoRA roles) and the
    same HF module names (so the same PEFT adapter files) as a LLaMA of the same shape."""
    from flax import nnx

    from medjax.peft.adapter_io import hf_modules
    from medjax.peft.config import PeftSettings
    from medjax.peft.setup import abstract_peft_model

    hf = {**llama.config_to_hf(ModelConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2,
                                           num_heads=4, num_kv_heads=2)), "sliding_window": WINDOW}
    cfg_m = mistral.config_from_hf({**hf, "model_type": "mistral"})
    cfg_l = llama.config_from_hf(hf)
    settings = PeftSettings(method=method, targets="all,lm_head,embed" if method == "lora" else "all,lm_head")

    def layout(cfg):
        state = nnx.state(abstract_peft_model(cfg, settings))
        return {path: (type(var).__name__, var.get_metadata().get("axes"), var.shape)
                for path, var in nnx.to_flat_state(state)}

    ours = layout(cfg_m)
    assert any("lora_a" in map(str, path) for path in ours) and ours == layout(cfg_l)
    assert hf_modules(cfg_m) == hf_modules(cfg_l)


def test_window_counts_positions_so_packed_documents_see_the_soft_prompt_as_alone(hf_mistral):
    """Prompt tuning puts the prompt at positions 0..P-1 in front of every packed document: measured in
    slots, the second document would lose the prompt out of its window; in positions it keeps it."""
    from flax import nnx

    from medjax.api import positions_from_segments
    from medjax.checkpoint.hf_model import load_hf_model
    from medjax.peft.prompt_tuning import add_soft_prompt
    from tests.peft_checks import assert_packed_documents_as_if_alone

    model = add_soft_prompt(load_hf_model(hf_mistral[0]), 3, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, tokens, positions, segments:
                      nnx.merge(graphdef, state)(tokens, positions, segments))

    def logits_of(tokens, segments):
        return np.asarray(forward(state, tokens, positions_from_segments(segments), segments))

    assert_packed_documents_as_if_alone(logits_of, [IDS[0, :10], IDS[1, 10:]], length=IDS.shape[1])


def test_mistral_chat_template_is_the_family_default():
    from medjax.data import templates

    assert templates.default_template(None, "mistral").name == "mistral"
    dialogue = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fever?"},
                {"role": "assistant", "content": "Rest."}, {"role": "user", "content": "How long?"}]
    # BOS (left out of the text form) once, the system text inside the first [INST], EOS after each answer
    assert templates.render_prompt(dialogue, "mistral") == (
        "[INST] Be brief.\n\nFever? [/INST] Rest.[INST] How long? [/INST]")
