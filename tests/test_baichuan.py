"""Baichuan / Baichuan2 in the published W_pack layout, against an independent numpy reference
(tests/reference/baichuan_numpy.py; transformers has no Baichuan class): a 7B-style model (rope,
Baichuan 1) and a 13B-style one (ALiBi with 6 heads, so the non-power-of-two slope rule matters, and
Baichuan2's NormHead). KV-cache decoding, packed documents and left-padded generation under ALiBi;
the HF round trip; how config.json picks rope / ALiBi and NormHead; a LoRA run through the train step
and its W_pack PEFT adapter; the baichuan2 chat template."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

import medjax
from medjax.api import LM
from medjax.checkpoint.hf_model import config_from_hf_dir, load_hf_model
from medjax.data.tokenizer import load_tokenizer
from medjax.models import baichuan
from medjax.models.decoder import init_cache
from medjax.models.layers import alibi_slopes
from medjax.peft.adapter_io import export_adapter, import_adapter
from medjax.peft.config import PeftSettings
from medjax.peft.setup import apply_peft, backbone_of, trainable_filter
from tests.peft_checks import assert_packed_documents_as_if_alone, train_steps
from tests.reference.baichuan_numpy import baichuan_logits, interleave_slopes

T = 16
IDS = np.random.RandomState(3).randint(3, 128, size=(1, T))

# config.json as baichuan-inc published them, shrunk: Baichuan-7B (rope) and Baichuan2-13B (ALiBi)
ROPE_HF = {"architectures": ["BaiChuanForCausalLM"], "model_type": "baichuan",
           "auto_map": {"AutoConfig": "configuration_baichuan.BaiChuanConfig",
                        "AutoModelForCausalLM": "modeling_baichuan.BaiChuanForCausalLM"},
           "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64, "initializer_range": 0.02,
           "max_position_embeddings": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "rms_norm_eps": 1e-6,
           "vocab_size": 128, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
           "tie_word_embeddings": False, "torch_dtype": "float32", "use_cache": True,
           "transformers_version": "4.29.1"}
ALIBI_HF = {"_from_model_config": True, "architectures": ["BaichuanForCausalLM"], "model_type": "baichuan",
            "auto_map": {"AutoConfig": "configuration_baichuan.BaichuanConfig",
                         "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"},
            "tokenizer_class": "BaichuanTokenizer", "gradient_checkpointing": False,
            "hidden_act": "silu", "hidden_size": 48, "intermediate_size": 96, "initializer_range": 0.02,
            "model_max_length": 64, "num_attention_heads": 6, "num_hidden_layers": 2, "rms_norm_eps": 1e-6,
            "vocab_size": 128, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
            "tie_word_embeddings": False, "torch_dtype": "float32", "use_cache": True,
            "norm_head": True}  # a tiny Baichuan2: its vocabulary is not the 125696 that implies NormHead


def random_weights(hf: dict, seed: int) -> dict:
    """Every tensor of the published layout random (norm scales around 1)."""
    rng = np.random.default_rng(seed)
    d, f, v = hf["hidden_size"], hf["intermediate_size"], hf["vocab_size"]
    shapes = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,), "lm_head.weight": (v, d)}
    for i in range(hf["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
                       p + "self_attn.W_pack.weight": (3 * d, d), p + "self_attn.o_proj.weight": (d, d),
                       p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d),
                       p + "mlp.down_proj.weight": (d, f)})
    return {n: (rng.normal(size=s) * 0.3 + (1.0 if len(s) == 1 else 0.0)).astype(np.float32)
            for n, s in shapes.items()}


def write_dir(directory: str, hf: dict, seed: int) -> dict:
    weights = random_weights(hf, seed)
    save_file(weights, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(hf, f)
    return weights


@pytest.fixture(scope="module", params=["rope", "alibi"])
def published(request, tmp_path_factory):
    hf = ROPE_HF if request.param == "rope" else ALIBI_HF
    directory = str(tmp_path_factory.mktemp(f"baichuan_{request.param}"))
    weights = write_dir(directory, hf, seed=7)
    return directory, hf, weights, medjax.load("hf:" + directory)


@pytest.fixture(scope="module")
def alibi_model(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("baichuan13b"))
    weights = write_dir(directory, ALIBI_HF, seed=11)
    return ALIBI_HF, weights, medjax.load("hf:" + directory), directory


def test_logits_match_the_numpy_reference(published):
    _, hf, weights, lm = published
    cfg = lm.config
    assert (cfg.alibi, cfg.norm_head) == (("model_max_length" in hf and "max_position_embeddings" not in hf),
                                          hf.get("norm_head", False))
    expected = baichuan_logits(weights, hf, IDS[0], norm_head=cfg.norm_head)
    ours = lm.logits(IDS)[0]
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    # each switch changes the answer, so the match above is evidence for it
    if cfg.alibi:
        rope = baichuan_logits(weights, {**hf, "max_position_embeddings": 64}, IDS[0], norm_head=True)
        assert np.abs(ours - rope).max() > 1e-1
    assert np.abs(ours - baichuan_logits(weights, hf, IDS[0], norm_head=not cfg.norm_head)).max() > 1e-1


def test_alibi_slopes_follow_the_published_rule_for_any_head_count(monkeypatch, alibi_model):
    for heads in (1, 4, 6, 8, 12, 40):
        np.testing.assert_allclose(alibi_slopes(heads), interleave_slopes(heads), rtol=1e-6)
    np.testing.assert_allclose(alibi_slopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3])
    # the plain geometric rule 2^(-8/6 * i) differs from it for 6 heads, and visibly in the logits
    hf, weights, _, _ = alibi_model
    import tests.reference.baichuan_numpy as ref

    expected = ref.baichuan_logits(weights, hf, IDS[0], norm_head=True)
    monkeypatch.setattr(ref, "interleave_slopes", lambda n: [2 ** (-8 / n * (i + 1)) for i in range(n)])
    assert np.abs(ref.baichuan_logits(weights, hf, IDS[0], norm_head=True) - expected).max() > 1e-2


def test_alibi_cached_decoding_equals_full_recomputation(alibi_model):
    _, _, lm, _ = alibi_model
    model, prefill = lm.model, 6
    full = lm.logits(IDS)
    ids = jnp.asarray(IDS, jnp.int32)
    positions, segments = jnp.arange(T, dtype=jnp.int32)[None], jnp.ones_like(ids)
    cache = model.init_cache(1, T)
    assert cache["positions"].shape == (1, T)  # ALiBi needs the cached keys' positions
    step = jax.jit(lambda tok, pos, seg, cache: model(tok, pos, seg, cache=cache))
    logits, cache = step(ids[:, :prefill], positions[:, :prefill], segments[:, :prefill], cache)
    out = [logits]
    for i in range(prefill, T):
        logits, cache = step(ids[:, i:i + 1], positions[:, i:i + 1], segments[:, i:i + 1], cache)
        out.append(logits)
    np.testing.assert_allclose(np.concatenate(out, axis=1), full, atol=1e-5)


def test_alibi_left_padded_generation_is_greedy_over_full_logits(alibi_model):
    _, _, lm, _ = alibi_model
    prompts = [[1, 5, 6, 7, 8, 9, 10, 11], [1, 12, 13]]
    new = lm.generate(prompts, max_new_tokens=4, eos_id=-1)
    for prompt, tokens in zip(prompts, new):
        row = np.zeros((1, T), np.int32)
        seq = prompt + tokens
        row[0, :len(seq)] = seq
        logits = lm.logits(row, (np.arange(T) < len(seq))[None].astype(np.int32))[0]
        assert tokens == logits[len(prompt) - 1:len(seq) - 1].argmax(-1).tolist()


def test_alibi_packed_documents_see_what_they_see_alone(alibi_model):
    _, _, lm, _ = alibi_model
    assert_packed_documents_as_if_alone(lambda tok, seg: lm.logits(tok, seg),
                                        [IDS[0, :7], IDS[0, 7:12], IDS[0, 12:15]], length=T)


def test_hf_round_trip_is_exact_in_the_published_layout(published, tmp_path):
    directory, hf, weights, lm = published
    lm.save(f"hf:{tmp_path}")
    written = load_file(str(tmp_path / "model.safetensors"))
    assert sorted(written) == sorted(weights)  # W_pack fused again, no q/k/v_proj
    for name, value in weights.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    out = json.loads((tmp_path / "config.json").read_text())
    for key in ("architectures", "auto_map", "model_type", "num_attention_heads", "vocab_size"):
        assert out[key] == hf[key], key
    assert ("max_position_embeddings" in out, "model_max_length" in out) == (not lm.config.alibi, lm.config.alibi)
    assert out.get("norm_head", False) == hf.get("norm_head", False)
    again = medjax.load(f"hf:{tmp_path}")
    assert again.config == lm.config
    np.testing.assert_array_equal(again.logits(IDS), lm.logits(IDS))


def test_position_scheme_and_norm_head_come_from_config_json():
    published_7b = {**ROPE_HF, "hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 125696,
                    "max_position_embeddings": 4096, "model_max_length": 4096, "z_loss_weight": 0}  # Baichuan2-7B
    published_13b = {k: v for k, v in ALIBI_HF.items() if k != "norm_head"} | {
        "hidden_size": 5120, "num_attention_heads": 40, "vocab_size": 64000, "model_max_length": 4096}  # Baichuan-13B
    cfg = baichuan.config_from_hf(published_7b)
    assert (cfg.alibi, cfg.norm_head, cfg.max_position_embeddings) == (False, True, 4096)
    assert "positions" not in init_cache(cfg.replace(num_layers=1), 1, 4)  # rope carries nothing extra
    cfg = baichuan.config_from_hf(published_13b)
    assert (cfg.alibi, cfg.norm_head, cfg.max_position_embeddings) == (True, False, 4096)
    # the size never decides: a 13B-sized config with max_position_embeddings is rope, a 7B-sized one without is ALiBi
    assert not baichuan.config_from_hf({**published_13b, "max_position_embeddings": 4096}).alibi
    assert baichuan.config_from_hf({k: v for k, v in published_7b.items() if k != "max_position_embeddings"}).alibi
    assert "norm_head" not in baichuan.config_to_hf(baichuan.config_from_hf(published_7b))
    with pytest.raises(KeyError, match=r"b/config.json.*neither max_position_embeddings.*model_max_length"):
        baichuan.config_from_hf({k: v for k, v in published_13b.items() if k != "model_max_length"}, "b/config.json")
    for key, bad, named in (("hidden_act", "gelu", "hidden_act"), ("tie_word_embeddings", True, "tie_word_embeddings"),
                            ("model_max_length", 0, "model_max_length"), ("norm_head", "yes", "norm_head"),
                            ("num_attention_heads", 7, "hidden_size")):
        with pytest.raises(ValueError, match=f"b/config.json: {named}="):
            baichuan.config_from_hf({**published_13b, key: bad}, "b/config.json")


def test_wrong_w_pack_shape_names_the_file_and_weight(tmp_path):
    weights = random_weights(ROPE_HF, 0)
    weights["model.layers.1.self_attn.W_pack.weight"] = weights["model.layers.1.self_attn.W_pack.weight"][:64]
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(ROPE_HF))
    assert config_from_hf_dir(str(tmp_path)).family == "baichuan"
    with pytest.raises(ValueError, match=r"model.layers.1.self_attn.W_pack.weight' has shape \(64, 32\)"):
        load_hf_model(str(tmp_path))


def test_lora_trains_through_alibi_and_the_norm_head_and_exports_a_w_pack_adapter(alibi_model, tmp_path):
    _, weights, lm, directory = alibi_model
    settings = PeftSettings(method="lora", rank=4, alpha=8.0, dropout=0.0, targets="all")
    model = apply_peft(nnx.clone(lm.model), settings)
    graphdef = nnx.split(model, trainable_filter(settings), ...)[0]
    tokens = jnp.asarray(IDS, jnp.int32)
    segments = jnp.asarray([[1] * 9 + [2] * 7], jnp.int32)  # two packed documents, positions restart
    positions = jnp.asarray([list(range(9)) + list(range(7))], jnp.int32)
    batch = {"tokens": tokens, "targets": jnp.roll(tokens, -1, axis=1), "loss_mask": jnp.ones((1, T), jnp.float32),
             "segment_ids": segments, "positions": positions}
    state, frozen, losses = train_steps(model, trainable_filter(settings), batch, 5, lr=2e-2)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.1, losses

    # q, k, v adapters leave as one block-diagonal adapter on W_pack whose PEFT delta is our merged change
    trained = nnx.merge(graphdef, state["params"], frozen)
    out = str(tmp_path / "adapter")
    export_adapter(trained, settings, out)
    with open(os.path.join(out, "adapter_config.json")) as f:
        ac = json.load(f)
    assert ac["rank_pattern"] == {"W_pack": 12} and {"W_pack", "o_proj", "down_proj"} <= set(ac["target_modules"])
    adapter = load_file(os.path.join(out, "adapter_model.safetensors"))
    name = "model.layers.1.self_attn.W_pack.weight"
    a, b = (adapter[f"base_model.model.{name[:-len('.weight')]}.lora_{x}.weight"] for x in "AB")
    merged = baichuan.export_params(nnx.to_pure_dict(nnx.state(backbone_of(trained))), trained.config)
    np.testing.assert_allclose(merged[name] - weights[name], ac["alpha_pattern"]["W_pack"] / 12 * b @ a, atol=1e-6)
    assert np.abs(merged[name] - weights[name]).max() > 1e-3
    reloaded, _ = import_adapter(load_hf_model(directory), out)
    np.testing.assert_allclose(LM(reloaded).logits(IDS), LM(trained).logits(IDS), atol=1e-5, rtol=0)


def test_an_adapter_on_the_normalised_head_is_refused(alibi_model):
    lm = alibi_model[2]
    with pytest.raises(ValueError, match=r"lm_head normalises its kernel"):
        apply_peft(nnx.clone(lm.model), PeftSettings(method="lora", rank=4, alpha=8.0, dropout=0.0,
                                                     targets="q,lm_head"))


class _CharTokenizer:
    """Ids by character; Baichuan2's user / assistant tokens are 195 / 196 as in its vocabulary."""
    bos_id, eos_id = 1, 2
    special = {"<reserved_106>": 195, "<reserved_107>": 196}

    def encode(self, text):
        return [3 + ord(c) % 100 for c in text]

    def token_to_id(self, token):
        return self.special.get(token)


def test_baichuan2_chat_template_puts_the_role_tokens_where_build_chat_input_does():
    from medjax.data.templates import default_template, encode_prompt, encode_turns, render_prompt

    tok, enc = _CharTokenizer(), _CharTokenizer().encode
    dialogue = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": "fever?"}]
    template = default_template(None, "baichuan")
    assert template.name == "baichuan2"
    # system text bare and first, no BOS; each trained answer ends with EOS (Baichuan2's fine-tune labels)
    assert encode_prompt(dialogue, template, tok) == (enc("Be brief.") + [195] + enc("hi") + [196] + enc("ok")
                                                      + [2, 195] + enc("fever?") + [196])
    assert encode_turns(dialogue[:3], template, tok) == [(enc("Be brief.") + [195] + enc("hi") + [196],
                                                          enc("ok") + [2])]
    assert render_prompt(dialogue[1:2], template) == "<reserved_106>hi<reserved_107>"


def test_lora_ift_through_the_trainer_learns_on_an_alibi_norm_head_baichuan(tmp_path):
    """The whole trainer (pipeline.run: data, LoRA, checkpoints, hf/ export) on a Baichuan2-13B-style directory."""
    from medjax.assets import default_paths
    from medjax.train.config import load_config_file
    from medjax.train.pipeline import run

    paths = default_paths()
    vocab = load_tokenizer(paths["tokenizer"]).vocab_size
    base = tmp_path / "base"
    base.mkdir()
    write_dir(str(base), {**ALIBI_HF, "vocab_size": vocab, "model_max_length": 64}, seed=5)
    c = load_config_file(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                      "configs", "ift.py"))
    c.model.init, c.model.tokenizer = f"hf:{base}", paths["tokenizer"]
    # 20 steps: the first 3 against the last 3 dropped 0.58 with the default tokenizer of 2026-12-02 (12: 0.29)
    c.train.update(steps=20, seq_len=64, batch_size=4, lr=3e-2, warmup_steps=2, log_every=1, eval_every=0,
                   eval_batches=1)
    c.checkpoint.async_save, c.eval.tasks, c.report = False, "", False
    c.peft.method, c.peft.targets, c.peft.dropout = "lora", "attn,mlp", 0.0
    run(c, str(tmp_path / "run"))
    with open(tmp_path / "run" / "ift" / "metrics.jsonl") as f:
        losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses
    exported = load_hf_model(str(tmp_path / "run" / "ift" / "hf"))  # merged LoRA, back in the W_pack layout
    assert exported.config.family == "baichuan" and exported.config.norm_head
