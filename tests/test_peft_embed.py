"""LoRA on the token embedding table (role "embed"): against the `peft` library (lora.Embedding) on
tiny random transformers LLaMAs, tied and untied; merge/unmerge; training leaves the table bitwise."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hf_fixtures import make_hf_llama, torch_logits
from peft_checks import train_steps
from medjax.checkpoint.hf_model import load_hf_model, save_hf_model
from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.models.registry import family_module
from medjax.parallel.mesh import make_mesh, state_shardings
from medjax.parallel.rules import logical_to_spec
from medjax.peft.adapter_io import export_adapter, import_adapter
from medjax.peft.config import PeftSettings
from medjax.peft.lora import adapters_disabled, lora_modules, merge_adapters, unmerge_adapters
from medjax.peft.lora_embedding import LoRAEmbed
from medjax.peft.setup import apply_peft, backbone_of, trainable_filter
from medjax.peft.targets import resolve_targets

import peft
import torch

IDS = np.random.default_rng(0).integers(3, 128, size=(2, 12)).astype(np.int32)
CFG = ModelConfig(family="llama", vocab_size=128, **preset("test"))  # tied embeddings
RANK = 4


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens)


def logits(model, ids=IDS):
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef, state, jnp.asarray(ids)))


def randomise(model, std=0.2):
    """Random A and B everywhere (peft's embedding init has A = 0, the Linear one B = 0)."""
    for i, (_, m) in enumerate(lora_modules(model)):
        m.lora_a.set_value(std * jax.random.normal(jax.random.PRNGKey(2 * i), m.lora_a.shape))
        m.lora_b.set_value(std * jax.random.normal(jax.random.PRNGKey(2 * i + 1), m.lora_b.shape))


@functools.lru_cache(maxsize=None)
def tiny():
    return family_module("llama").build(CFG, nnx.Rngs(0))


def adapted(targets="embed", **kw):
    settings = PeftSettings(method="lora", rank=RANK, alpha=8.0, targets=targets, **kw)
    return apply_peft(nnx.clone(tiny()), settings), settings


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def hf_base(request, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hf_tied" if request.param else "hf_untied"))
    make_hf_llama(d, seed=5, tie_word_embeddings=request.param)
    return d, request.param


def torch_base(directory):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(directory, attn_implementation="eager").float().eval()


def test_embed_role_selects_the_token_table_and_all_leaves_it_out():
    model = tiny()
    assert resolve_targets(model, "attn,mlp,embed")[0] == ("embed",)
    assert ("embed",) not in resolve_targets(model, "all")
    with pytest.raises(ValueError, match=r"available layers: embed, layers/attn/k"):
        resolve_targets(model, "qkv_proj")


def test_embed_adapter_starts_as_peft_does_and_carries_the_table_axes():
    model, settings = adapted("q,embed")
    e = model.embed
    assert isinstance(e, LoRAEmbed) and not np.any(np.asarray(e.lora_a[...]))  # A = 0, B ~ N(0, 1)
    assert 0.5 < float(np.std(np.asarray(e.lora_b[...]))) < 1.5
    assert e.lora_a.shape == (CFG.vocab_size, RANK) and e.lora_b.shape == (RANK, CFG.hidden_size)
    assert e.lora_a.get_metadata()["axes"] == ("vocab", "lora_rank")
    assert e.lora_b.get_metadata()["axes"] == ("lora_rank", "embed")
    assert logical_to_spec(e.lora_a.get_metadata()["axes"]) == logical_to_spec(("vocab", None))
    _, params, frozen = nnx.split(model, trainable_filter(settings), ...)
    for tree in (params, frozen):
        state_shardings(tree, make_mesh(devices=jax.devices()[:1]))


def test_our_embed_adapter_loads_in_peft_with_matching_logits(hf_base, tmp_path):
    base_dir, tied = hf_base
    settings = PeftSettings(method="lora", rank=RANK, alpha=8.0, targets="q,v,embed")
    model = apply_peft(load_hf_model(base_dir), settings)
    randomise(model)
    ours = logits(model)
    assert np.abs(ours - logits(load_hf_model(base_dir))).max() > 1e-2  # the adapters matter
    out = str(tmp_path / "adapter")
    export_adapter(model, settings, out)
    theirs_model = peft.PeftModel.from_pretrained(torch_base(base_dir), out).eval()
    np.testing.assert_allclose(ours, torch_logits(theirs_model, IDS), atol=1e-4, rtol=0)
    # the merged export is a plain HF model computing the same (tied: the head is untied, base table)
    merged = str(tmp_path / "merged")
    save_hf_model(backbone_of(model), merged)
    np.testing.assert_allclose(torch_logits(torch_base(merged), IDS), ours, atol=1e-4, rtol=0)


def test_a_peft_made_embed_adapter_imports_with_matching_logits(hf_base, tmp_path):
    base_dir, tied = hf_base
    targets = ["embed_tokens", "k_proj"] + ([] if tied else ["lm_head"])
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=targets, use_rslora=True, task_type="CAUSAL_LM")
    theirs_model = peft.get_peft_model(torch_base(base_dir), config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs_model.named_parameters():
            if "lora_" in name:  # A and B random (A starts at 0 on the embedding, B on the Linears)
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    theirs_model.eval()
    expected = torch_logits(theirs_model, IDS)
    adapter = str(tmp_path / "theirs")
    theirs_model.save_pretrained(adapter)
    model, settings = import_adapter(load_hf_model(base_dir), adapter)
    assert isinstance(model.embed, LoRAEmbed) and settings.rslora and settings.rank == 4
    np.testing.assert_allclose(logits(model), expected, atol=1e-4, rtol=0)


def test_embed_merge_unmerge_and_the_tied_head(tmp_path):
    model, settings = adapted("embed,v")
    randomise(model)
    with adapters_disabled(model):
        np.testing.assert_array_equal(logits(model), logits(tiny()))
    adapter = logits(model)
    save_params(str(tmp_path), model)  # ckpt: rebuilds the LoRAEmbed from peft_config.json
    settings.save(str(tmp_path))
    loaded, _ = load_params_model(str(tmp_path))
    assert isinstance(loaded.embed, LoRAEmbed)
    np.testing.assert_array_equal(logits(loaded), adapter)
    table = np.asarray(model.embed.base.embedding[...])
    merge_adapters(model)
    assert np.abs(np.asarray(model.embed.base.embedding[...]) - table).max() > 0
    np.testing.assert_allclose(logits(model), adapter, atol=1e-5, rtol=0)  # the tied head keeps the base table
    unmerge_adapters(model)
    assert np.asarray(model.embed.base.embedding[...]).tobytes() == table.tobytes()
    plain = backbone_of(model)
    assert not plain.config.tie_embeddings and model.config.tie_embeddings
    assert np.asarray(plain.lm_head.kernel[...]).tobytes() == table.T.tobytes()
    np.testing.assert_allclose(logits(plain), adapter, atol=1e-5, rtol=0)


def test_training_the_embed_adapter_leaves_the_table_bitwise_unchanged():
    model, settings = adapted("embed")
    trainable = trainable_filter(settings)
    table = np.asarray(model.embed.base.embedding[...])
    tokens = jnp.asarray(np.random.default_rng(1).integers(3, 128, size=(2, 16)), jnp.int32)
    batch = {"tokens": tokens, "targets": jnp.roll(tokens, -1, axis=1), "loss_mask": jnp.ones((2, 16), jnp.float32),
             "segment_ids": jnp.ones((2, 16), jnp.int32), "positions": jnp.broadcast_to(jnp.arange(16), (2, 16))}
    state, frozen, losses = train_steps(model, trainable, batch, 3)
    assert sum(np.size(x) for x in jax.tree.leaves(state["params"])) == RANK * (CFG.vocab_size + CFG.hidden_size)
    assert np.asarray(frozen["embed"]["base"]["embedding"][...]).tobytes() == table.tobytes()
    assert np.abs(np.asarray(state["params"]["embed"]["lora_a"][...])).max() > 0  # A starts at 0 and moved
    assert losses[-1] < losses[0]
