"""Prompt tuning against transformers + peft on a tiny random LLaMA: logits, PEFT export/import, greedy
KV-cache generation; every document of a packed row sees the soft prompt."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch
from flax import nnx

import medjax
from medjax.api import positions_from_segments
from hf_fixtures import make_hf_llama
from peft_checks import assert_packed_documents_as_if_alone
from medjax.checkpoint.hf_model import load_hf_model
from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.models.layers import SHARED_SEGMENT
from medjax.peft.config import PeftSettings
from medjax.peft.convert import convert_peft
from medjax.peft.prompt_io import export_prompt, import_prompt, is_prompt_adapter
from medjax.peft.prompt_tuning import add_soft_prompt

P = 3  # virtual tokens
EOS_NEVER = -1
IDS = np.random.default_rng(0).integers(3, 128, size=(2, 12)).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens, positions, segments):
    return nnx.merge(graphdef, state)(tokens, positions, segments)


def logits(model, tokens, segments=None, positions=None):
    tokens = jnp.asarray(tokens, jnp.int32)
    segments = jnp.ones_like(tokens) if segments is None else jnp.asarray(segments, jnp.int32)
    if positions is None:
        positions = positions_from_segments(np.asarray(segments))
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef, state, tokens, jnp.asarray(positions, jnp.int32), segments))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hf_base"))
    make_hf_llama(d, seed=3)
    return d


@pytest.fixture(scope="module")
def prompted(base_dir):
    """Our prompt-tuned model, its soft prompt random at the scale of the embeddings."""
    model = add_soft_prompt(load_hf_model(base_dir), P, rngs=nnx.Rngs(0))
    model.soft_prompt.set_value(0.3 * jax.random.normal(jax.random.PRNGKey(5), model.soft_prompt.shape))
    return model


@pytest.fixture(scope="module")
def peft_model(base_dir, prompted, tmp_path_factory):
    """peft's PromptTuning model loaded from our export (a PeftModel over a fresh transformers base)."""
    from transformers import LlamaForCausalLM

    directory = str(tmp_path_factory.mktemp("prompt_adapter"))
    export_prompt(prompted, directory)
    base = LlamaForCausalLM.from_pretrained(base_dir, attn_implementation="eager").float().eval()
    return peft.PeftModel.from_pretrained(base, directory).eval(), directory


def test_export_loads_in_peft_with_matching_logits_and_imports_back(base_dir, prompted, peft_model):
    model, directory = peft_model
    assert isinstance(model.active_peft_config, peft.PromptTuningConfig) and is_prompt_adapter(directory)
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(IDS)).logits.float().numpy()
    assert theirs.shape[1] == P + IDS.shape[1]  # peft returns the virtual tokens' logits too
    ours = logits(prompted, IDS)
    np.testing.assert_allclose(ours, theirs[:, P:], atol=1e-4)
    back, settings = import_prompt(load_hf_model(base_dir), directory)
    assert settings.method == "prompt" and settings.num_virtual_tokens == P
    np.testing.assert_array_equal(np.asarray(back.soft_prompt[...]), np.asarray(prompted.soft_prompt[...]))


def test_convert_round_trips_a_prompt_run_through_peft(base_dir, prompted, tmp_path):
    ckpt, adapter, back = (str(tmp_path / name) for name in ("ckpt", "adapter", "back"))
    save_params(ckpt, prompted)
    PeftSettings(method="prompt", num_virtual_tokens=P).save(ckpt)
    convert_peft(f"ckpt:{ckpt}", f"peft:{adapter}")
    assert is_prompt_adapter(adapter)
    convert_peft(f"peft:{adapter}", f"ckpt:{back}", base=f"hf:{base_dir}")
    loaded, _ = load_params_model(back)
    np.testing.assert_array_equal(logits(loaded, IDS), logits(prompted, IDS))
    for dst in (f"hf:{tmp_path / 'hf'}", f"ckpt:{tmp_path / 'merged'}"):  # a prompt has no merged form
        with pytest.raises(ValueError, match="soft prompt is an input, not a weight"):
            convert_peft(f"ckpt:{ckpt}", dst, merge=True)


def test_bad_prompt_adapter_names_the_key(base_dir, prompted, tmp_path):
    import json

    export_prompt(prompted, str(tmp_path))
    path = tmp_path / "adapter_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "token_dim": 64}))
    with pytest.raises(ValueError, match=r"adapter_config.json: token_dim=64: the base model's hidden size is 32"):
        import_prompt(load_hf_model(base_dir), str(tmp_path))


def test_greedy_generation_matches_peft_and_full_recomputation(prompted, peft_model):
    """Our KV-cache decoding against two recomputations without any cache, token by token: peft's forward
    (the soft prompt in front of the whole row) and our own model over a right-padded row.

    Not against peft's generate(): transformers 5.24 renamed generate's cache keyword from `past_key_values`
    to `cache`, and peft 0.21.2's prepare_inputs_for_generation still looks for `past_key_values`, so at every
    decoding step it finds no cache and prepends the P virtual tokens again (the base model sees P + 1 new
    embeddings per step); its greedy tokens then leave the no-cache recomputation at the third token. peft's
    forward without cache agrees with the base model fed [soft prompt; token embeddings] by hand.
    peft also ignores position ids for prompt tuning, so we run it on each prompt alone (no padding), which is
    what our left-padded buckets compute for every row."""
    prompts = [[1, 5, 6, 7, 8, 9], [1, 10, 11]]
    steps = 8
    lm = medjax.LM(prompted)
    ours = lm.generate(prompts, max_new_tokens=steps, eos_id=EOS_NEVER)
    model, _ = peft_model
    for prompt, got in zip(prompts, ours):
        theirs = list(prompt)
        with torch.no_grad():
            for _ in range(steps):
                step_logits = model(input_ids=torch.tensor([theirs]), use_cache=False).logits
                theirs.append(int(step_logits[0, -1].argmax()))
        assert got == theirs[len(prompt):]
        # ours with no cache: one full forward per step over a right-padded row of one shape
        row = np.zeros((1, 16), np.int32)
        row[0, :len(prompt)] = prompt
        for i in range(steps):
            n = len(prompt) + i
            step_logits = logits(prompted, row, segments=(np.arange(16) < n)[None].astype(np.int32))
            row[0, n] = int(np.argmax(step_logits[0, n - 1]))
        assert got == row[0, len(prompt):len(prompt) + steps].tolist()


def test_prompt_tuned_cache_holds_the_prompt_first(prompted):
    cache = prompted.init_cache(2, 10)
    assert cache["k"].shape[2] == 10 + P and int(cache["index"]) == P
    segments = np.asarray(cache["segment_ids"])
    assert (segments[:, :P] == SHARED_SEGMENT).all() and (segments[:, P:] == 0).all()


def test_every_packed_document_sees_the_prompt(prompted):
    rng = np.random.default_rng(1)
    docs = [rng.integers(3, 128, size=5), rng.integers(3, 128, size=7)]
    assert_packed_documents_as_if_alone(lambda tokens, segments: logits(prompted, tokens, segments), docs)
