"""GLM-10B as THUDM published it: a config.json without special-token ids (they live in the
tokenizer files) and the GLMGPT2Tokenizer (GPT-2 BPE + GLM's special tokens), both loaded without
remote code. The config field set is THUDM/glm-10b's (as PaddleNLP's GLM_PRETRAINED_INIT_CONFIGURATION
copies it, plus the HF metadata), shrunk to tiny sizes; the tokenizer is a tiny byte-level BPE
written here with the published added_tokens.json layout."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx

import medjax
from medjax.api import LM
from medjax.checkpoint.hf_model import config_from_hf_dir
from medjax.data.glm_tokenizer import GLM10B_SPECIALS, GLM10BTokenizer
from medjax.data.tokenizer import load_tokenizer
from medjax.models import glm_v1
from medjax.models.glm import glm_layout

PUBLISHED_CONFIG = {
    "architectures": ["GLMModel"], "auto_map": {"AutoConfig": "configuration_glm.GLMConfig",
                                                "AutoModel": "modeling_glm.GLMModel"},
    "attention_dropout_prob": 0.1, "attention_scale": 1.0, "block_position_encoding": True,
    "checkpoint_activations": False, "checkpoint_num_layers": 1, "embedding_dropout_prob": 0.1,
    "hidden_size": 32, "initializer_range": 0.02, "max_sequence_length": 32, "model_type": "glm",
    "num_attention_heads": 4, "num_layers": 2, "output_dropout_prob": 0.1, "output_predict": True,
    "parallel_output": True, "pool_token": "cls", "relative_encoding": False, "spell_func": "lstm",
    "spell_length": None, "torch_dtype": "float32", "vocab_size": 288,
}
TOKENIZER_CONFIG = {
    "tokenizer_class": "GLMGPT2Tokenizer", "auto_map": {"AutoTokenizer": ["tokenization_glm.GLMGPT2Tokenizer", None]},
    "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "cls_token": "[CLS]", "mask_token": "[MASK]",
    "unk_token": "[UNK]", "additional_special_tokens": ["<|startofpiece|>", "<|endofpiece|>", "[gMASK]", "[sMASK]"],
    "add_prefix_space": False,
}
MERGES = ["\u0120 t", "h e", "\u0120t he", "i n", "e r", "\u0120 p", "a t", "\u0120p at", "i e", "n t"]


def _byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the others are shifted
    past 255 in byte order, so every byte has one visible character."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def write_glm10b_tokenizer(directory, added_tokens: bool = True) -> int:
    """vocab.json (every byte, the merges, <|endoftext|> last), merges.txt, tokenizer_config.json and
    added_tokens.json (ids right after the BPE vocabulary). Returns the BPE vocabulary size."""
    os.makedirs(directory, exist_ok=True)
    vocab = _byte_symbols() + ["".join(m.split()) for m in MERGES] + ["<|endoftext|>"]
    with open(os.path.join(directory, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f)
    with open(os.path.join(directory, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(TOKENIZER_CONFIG, f)
    if added_tokens:
        with open(os.path.join(directory, "added_tokens.json"), "w") as f:
            # <|endoftext|> listed too, with its vocab.json id, in case the published file does
            json.dump({"<|endoftext|>": len(vocab) - 1, **{t: len(vocab) + k for k, t in enumerate(GLM10B_SPECIALS)}}, f)
    return len(vocab)


BPE = len(_byte_symbols()) + len(MERGES) + 1
SOP, EOP, CLS, MASK, SEP, UNK, GMASK, SMASK = range(BPE, BPE + 8)
EXPLICIT = {"mask_token_id": MASK, "smask_token_id": SMASK, "gmask_token_id": GMASK, "sop_token_id": SOP,
            "eop_token_id": EOP}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("glm10b_tokenizer")
    write_glm10b_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def tok(tokenizer_dir):
    return load_tokenizer(str(tokenizer_dir))


def _write_config(directory, config):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return str(directory)


# -- config -----------------------------------------------------------------------------------------

def test_published_config_routes_to_glm_v1():
    assert glm_layout(PUBLISHED_CONFIG, "config.json") == "glm_v1"
    from transformers import GlmConfig

    transformers_glm = GlmConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32).to_dict()
    assert glm_layout(transformers_glm, "config.json") == "transformers"  # GlmForCausalLM's config


@pytest.mark.parametrize("where", ["added_tokens.json", "tokenizer_config.json", "tokenizer.json"])
def test_special_ids_come_from_the_tokenizer_files(tmp_path, where):
    _write_config(tmp_path, PUBLISHED_CONFIG)
    ids = {t: BPE + k for k, t in enumerate(GLM10B_SPECIALS)}
    if where == "added_tokens.json":
        content = ids
    elif where == "tokenizer_config.json":
        content = {**TOKENIZER_CONFIG, "added_tokens_decoder": {str(i): {"content": t, "special": True}
                                                                for t, i in ids.items()}}
    else:
        content = {"added_tokens": [{"id": i, "content": t, "special": True} for t, i in ids.items()]}
    (tmp_path / where).write_text(json.dumps(content))
    cfg = config_from_hf_dir(str(tmp_path))
    assert cfg.family == "glm_v1" and cfg.extra["flavour"] == "glm" and cfg.tie_embeddings
    assert {k: cfg.extra[k] for k in EXPLICIT} == EXPLICIT
    assert (cfg.bos_token_id, cfg.eos_token_id) == (SOP, EOP)
    exported = glm_v1.config_to_hf(cfg)  # export writes the ids into config.json
    assert {k: exported[k] for k in EXPLICIT} == EXPLICIT


def test_config_ids_win_over_the_tokenizer_files(tmp_path):
    write_glm10b_tokenizer(tmp_path)
    _write_config(tmp_path, {**PUBLISHED_CONFIG, "gmask_token_id": 7})
    cfg = config_from_hf_dir(str(tmp_path))
    assert cfg.extra["gmask_token_id"] == 7 and cfg.extra["sop_token_id"] == SOP


def test_missing_special_ids_name_config_field_and_files(tmp_path):
    _write_config(tmp_path, PUBLISHED_CONFIG)
    (tmp_path / "added_tokens.json").write_text(json.dumps({"[MASK]": MASK}))
    with pytest.raises(KeyError) as err:
        config_from_hf_dir(str(tmp_path))
    message = str(err.value)
    assert "config.json" in message and "'gmask_token_id'" in message and "[gMASK]" in message
    for name in ("added_tokens.json", "tokenizer_config.json", "tokenizer.json"):
        assert name in message


@pytest.mark.parametrize("content,error", [('{"[MASK]": 1,\n oops}', "invalid JSON at line 2"),
                                           ('{"[MASK]": "fifty"}', "malformed added-token entry"),
                                           ('["[MASK]"]', "expected a JSON object")])
def test_bad_tokenizer_json_names_the_file(tmp_path, content, error):
    _write_config(tmp_path, PUBLISHED_CONFIG)
    (tmp_path / "added_tokens.json").write_text(content)
    with pytest.raises(ValueError, match=f"added_tokens.json: {error}"):
        config_from_hf_dir(str(tmp_path))


# -- tokenizer --------------------------------------------------------------------------------------

def test_tokenizer_special_ids(tok):
    assert isinstance(tok, GLM10BTokenizer)
    assert {t: tok.token_to_id(t) for t in GLM10B_SPECIALS} == {t: BPE + k for k, t in enumerate(GLM10B_SPECIALS)}
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (CLS, BPE - 1, BPE - 1)
    assert tok.vocab_size == BPE + 8


def test_tokenizer_round_trip_and_specials_in_text(tok):
    for text in ("the patient is in the clinic", "发热 3 天, 体温 39.5°C\n\tok", "  spaces  and émojis 👋"):
        ids = tok.encode(text)
        assert all(i < BPE - 1 for i in ids) and tok.decode(ids) == text
    ids = tok.encode("the patient [MASK] fever<|startofpiece|>")
    assert ids.count(MASK) == 1 and ids[-1] == SOP
    assert ids[ids.index(MASK) - 1] != tok.encode(" ")[0]  # [MASK] swallows the space before it (lstrip)
    assert tok.decode(ids) == "the patient fever"
    assert tok.decode(ids, skip_special_tokens=False) == "the patient[MASK] fever<|startofpiece|>"


def test_tokenizer_build_inputs(tok):
    ids = tok.encode("the patient")
    assert tok.build_inputs(ids) == [CLS] + ids + [BPE - 1]


def test_tokenizer_save_reload(tok, tmp_path):
    tok.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert isinstance(again, GLM10BTokenizer) and again.fingerprint() == tok.fingerprint()
    assert again.encode("the [gMASK]") == tok.encode("the [gMASK]")


def test_tokenizer_without_added_tokens_uses_the_published_ids(tmp_path):
    write_glm10b_tokenizer(tmp_path, added_tokens=False)  # a tiny vocabulary: 50257.. cannot follow it
    with pytest.raises(ValueError, match=r"do not follow the 267 tokens of vocab.json"):
        load_tokenizer(str(tmp_path))


def test_tokenizer_with_gaps_in_added_tokens_is_an_error(tmp_path):
    write_glm10b_tokenizer(tmp_path)
    (tmp_path / "added_tokens.json").write_text(json.dumps({t: BPE + 2 * k for k, t in enumerate(GLM10B_SPECIALS)}))
    with pytest.raises(ValueError, match="added_tokens.json: added token ids"):
        load_tokenizer(str(tmp_path))


# -- load end to end --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def published_and_explicit(tmp_path_factory, tokenizer_dir):
    """The same random weights twice: as published (ids only in the tokenizer files) and with the
    ids written into config.json."""
    explicit = str(tmp_path_factory.mktemp("glm10b_explicit"))
    cfg = glm_v1.config_from_hf({**PUBLISHED_CONFIG, **EXPLICIT})
    model = glm_v1.build(cfg, nnx.Rngs(3))
    LM(model).save(f"hf:{explicit}")
    published = tmp_path_factory.mktemp("glm10b_published")
    shutil.copytree(tokenizer_dir, published, dirs_exist_ok=True)
    shutil.copy(os.path.join(explicit, "model.safetensors"), published / "model.safetensors")
    _write_config(published, PUBLISHED_CONFIG)
    return medjax.load(f"hf:{published}"), medjax.load(f"hf:{explicit}")


def test_published_layout_loads_with_the_tokenizer_ids(published_and_explicit):
    published, explicit = published_and_explicit
    assert isinstance(published.tokenizer, GLM10BTokenizer)
    assert published.config.extra == explicit.config.extra
    tok = published.tokenizer
    contexts = [tok.build_inputs(tok.encode(t)) + [SOP] for t in ("the patient [MASK] fever", "in the [gMASK] at")]
    width = max(map(len, contexts)) + 2
    rows = np.array([c + list(range(70, 70 + width - len(c))) for c in contexts])  # Part B spans fill the rows
    np.testing.assert_array_equal(published.logits(rows), explicit.logits(rows))


def test_generation_from_build_inputs_and_sop(published_and_explicit):
    lm = published_and_explicit[0]
    tok = lm.tokenizer
    prompt = tok.build_inputs(tok.encode("the patient has a [MASK] today")) + [SOP]
    out = lm.generate([prompt], max_new_tokens=3, temperature=0.0)[0]
    assert 1 <= len(out) <= 3 and all(0 <= i < lm.config.vocab_size for i in out)
    # the cached decoding derives the same 2D positions as a full forward pass of the prompt
    assert out[0] == int(np.argmax(lm.logits(np.array([prompt]))[0, -1]))
