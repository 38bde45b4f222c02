"""Baichuan / Baichuan2 tokenizer directories (tokenizer_class BaichuanTokenizer, auto_map to remote code)
load as SentencePiece tokenizers without trust_remote_code. The directories are built like the published
ones around the real LLaMA-2 tokenizer.model (Baichuan's is the same kind of SentencePiece model)."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import sentencepiece as spm

from medjax.data.baichuan_tokenizer import BaichuanTokenizer
from medjax.data.tokenizer import load_tokenizer
from shared_data import shared_data

LLAMA2_MODEL = os.path.join("tokenizers", "llama2", "tokenizer.model")
TEXTS = ["Fever and cough for three days.", "患者发热三天，伴有咳嗽。", "  two spaces\nnew line\ttab"]
TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _added(content: str) -> dict:  # how the published configs spell their special tokens
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": True}


def _write(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def _baichuan_dir(root: str, version: int) -> str:
    """Baichuan2: pad <unk>, add_bos/add_eos false, auto_map, a chat template. Baichuan-7B: class name only,
    no pad, the flags left to the class defaults (BOS added)."""
    d = os.path.join(root, f"baichuan{version}")
    os.makedirs(d)
    shutil.copy(shared_data(LLAMA2_MODEL), os.path.join(d, "tokenizer.model"))
    with open(os.path.join(d, "tokenization_baichuan.py"), "w") as f:
        f.write("# stand-in for the published remote code; never imported\n")
    specials = {"bos_token": _added("<s>"), "eos_token": _added("</s>"), "unk_token": _added("<unk>")}
    config = {"tokenizer_class": "BaichuanTokenizer", "model_max_length": 4096, "sp_model_kwargs": {}, **specials}
    if version == 2:
        specials["pad_token"] = _added("<unk>")
        config.update(specials, add_bos_token=False, add_eos_token=False, use_fast=False, chat_template=TEMPLATE,
                      auto_map={"AutoTokenizer": ["tokenization_baichuan.BaichuanTokenizer", None]})
    _write(os.path.join(d, "tokenizer_config.json"), config)
    _write(os.path.join(d, "special_tokens_map.json"), specials)
    return d


@pytest.fixture(scope="module")
def sp():
    return spm.SentencePieceProcessor(model_file=shared_data(LLAMA2_MODEL))


@pytest.mark.parametrize("version", [1, 2])
def test_loads_without_remote_code(tmp_path, sp, version):
    tok = load_tokenizer(_baichuan_dir(str(tmp_path), version))
    assert isinstance(tok, BaichuanTokenizer) and tok.kind == "sentencepiece" and tok.hf is None
    for text in TEXTS:
        assert tok.encode(text) == sp.encode(text)
        assert tok.decode(tok.encode(text)) == sp.decode(sp.encode(text))
    assert (tok.bos_id, tok.eos_id, tok.vocab_size) == (1, 2, 32000)
    if version == 2:  # pad from the config: the SentencePiece model itself has no pad (pad_id -1)
        assert sp.pad_id() == -1 and tok.pad_id == 0
        assert tok.chat_template == TEMPLATE
        assert tok.build_inputs([5, 6]) == [5, 6]
    else:
        assert tok.pad_id is None and tok.chat_template is None
        assert tok.build_inputs([5, 6]) == [1, 5, 6]
    # special-token strings become their ids, as in the transformers tokenizer
    assert tok.encode("hi</s>") == sp.encode("hi") + [2]


def test_save_round_trips(tmp_path):
    tok = load_tokenizer(_baichuan_dir(str(tmp_path), 2))
    out = str(tmp_path / "saved")
    tok.save(out)
    assert sorted(os.listdir(out)) == ["special_tokens_map.json", "tokenization_baichuan.py",
                                       "tokenizer.model", "tokenizer_config.json"]
    again = load_tokenizer(out)
    assert isinstance(again, BaichuanTokenizer) and again.fingerprint() == tok.fingerprint()
    assert (again.bos_id, again.eos_id, again.pad_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    assert again.encode(TEXTS[1]) == tok.encode(TEXTS[1]) and again.chat_template == TEMPLATE


def test_special_token_missing_from_model_names_file_and_key(tmp_path):
    d = _baichuan_dir(str(tmp_path), 2)
    _write(os.path.join(d, "special_tokens_map.json"), {"eos_token": "<|no_such_piece|>"})
    with pytest.raises(ValueError, match=r"special_tokens_map\.json: eos_token.*not a piece"):
        load_tokenizer(d)
