"""ChatGLM tokenizers: the real ChatGLM-6B SentencePiece model against published test vectors, and
the ChatGLM2/3 special-token numbering on a tiny SentencePiece model trained here."""
from __future__ import annotations

import json
import os
import shutil
import unicodedata

import pytest

from medjax.data.glm_tokenizer import ChatGLM2Tokenizer, ChatGLM6BTokenizer
from medjax.data.tokenizer import load_tokenizer

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tokenizers", "chatglm6b")
MODEL = os.path.join(DATA, "ice_text.model")
needs_data = pytest.mark.skipif(not os.path.exists(MODEL), reason="../shared/data/tokenizers/chatglm6b missing")


@pytest.fixture(scope="module")
def chatglm6b():
    return load_tokenizer(MODEL)


@pytest.fixture(scope="module")
def vectors():
    with open(os.path.join(DATA, "tokenizer_test_vectors.json")) as f:
        return json.load(f)["chatglm_6b"]


@needs_data
def test_chatglm6b_reproduces_test_vectors(chatglm6b, vectors):
    assert isinstance(chatglm6b, ChatGLM6BTokenizer)
    for case in vectors:
        assert chatglm6b.build_inputs(chatglm6b.encode(case["text"])) == case["ids"], case["text"]


@needs_data
def test_chatglm6b_decode_restores_whitespace(chatglm6b, vectors):
    for case in vectors:  # the model normalises (NFKC) full-width punctuation, as the original does
        assert chatglm6b.decode(case["ids"]) == unicodedata.normalize("NFKC", case["text"])


@needs_data
def test_chatglm6b_special_tokens(chatglm6b):
    assert (chatglm6b.bos_id, chatglm6b.eos_id, chatglm6b.pad_id) == (130004, 130005, 3)
    ids = chatglm6b.encode("北京是中国的[MASK]，[gMASK]")
    assert 130000 in ids and ids[-1] == 130001
    assert chatglm6b.decode(ids + [130004, 20, 130005]) == chatglm6b.decode(ids + [20])


@needs_data
def test_chatglm6b_directory_save_and_reload(chatglm6b, tmp_path):
    chatglm6b.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert isinstance(again, ChatGLM6BTokenizer) and again.fingerprint() == chatglm6b.fingerprint()


@pytest.fixture(scope="module")
def chatglm2_dir(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    path = tmp_path_factory.mktemp("chatglm2")
    corpus = path / "corpus.txt"
    corpus.write_text("\n".join(["the patient has a fever and a cough", "take the medicine twice a day",
                                 "blood pressure is normal", "发热 咳嗽 头痛"] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(path / "tokenizer"), vocab_size=32,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2)
    os.remove(corpus)
    os.remove(path / "tokenizer.vocab")
    return path


@pytest.mark.parametrize("version", [2, 3])
def test_chatglm2_and_3_special_tokens_follow_the_vocabulary(chatglm2_dir, tmp_path, version):
    shutil.copy(chatglm2_dir / "tokenizer.model", tmp_path / "tokenizer.model")
    config = {"tokenizer_class": "ChatGLMTokenizer"}
    if version == 3:
        config["chat_template"] = "{% for m in messages %}<|{{ m.role }}|>{% endfor %}<|user|>"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(str(tmp_path))
    assert isinstance(tok, ChatGLM2Tokenizer) and tok.version == version
    n = 32
    assert tok.token_to_id("[gMASK]") == n + 1 and tok.token_to_id("sop") == n + 3
    assert tok.vocab_size == n + (9 if version == 3 else 5)
    ids = tok.build_inputs(tok.encode("the patient has a fever"))
    assert ids[:2] == [n + 1, n + 3]
    assert tok.decode(ids) == "the patient has a fever"
    if version == 3:
        assert tok.encode("<|user|>")[0] == n + 6


def test_unknown_chatglm_tokenizer_version(chatglm2_dir):
    with pytest.raises(ValueError, match="version"):
        ChatGLM2Tokenizer(str(chatglm2_dir / "tokenizer.model"), version=4)
