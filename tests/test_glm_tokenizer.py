"""ChatGLM tokenizers: the real ChatGLM-6B SentencePiece model against published test vectors, and
the ChatGLM2/3 special-token numbering on a tiny SentencePiece model trained here and on a model
with ChatGLM2's published size (GLM-10B's tokenizer: tests/test_glm10b_layout.py)."""
from __future__ import annotations

import json
import os
import shutil
import unicodedata

import pytest
import sentencepiece as spm

from medjax.data.glm_tokenizer import CHATGLM2_SPECIALS, CHATGLM3_ROLES, ChatGLM2Tokenizer, ChatGLM6BTokenizer
from medjax.data.tokenizer import load_tokenizer
from shared_data import shared_data

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tokenizers", "chatglm6b")
MODEL = os.path.join(DATA, "ice_text.model")
LLAMA2_MODEL = os.path.join(DATA, "..", "llama2", "tokenizer.model")


@pytest.fixture(scope="module")
def chatglm6b():
    return load_tokenizer(shared_data(MODEL))


@pytest.fixture(scope="module")
def vectors():
    with open(shared_data(os.path.join(DATA, "tokenizer_test_vectors.json"))) as f:
        return json.load(f)["chatglm_6b"]


def test_chatglm6b_reproduces_test_vectors(chatglm6b, vectors):
    assert isinstance(chatglm6b, ChatGLM6BTokenizer)
    for case in vectors:
        assert chatglm6b.build_inputs(chatglm6b.encode(case["text"])) == case["ids"], case["text"]


def test_chatglm6b_decode_restores_whitespace(chatglm6b, vectors):
    for case in vectors:  # the model normalises (NFKC) full-width punctuation, as the original does
        assert chatglm6b.decode(case["ids"]) == unicodedata.normalize("NFKC", case["text"])


def test_chatglm6b_special_tokens(chatglm6b):
    assert (chatglm6b.bos_id, chatglm6b.eos_id, chatglm6b.pad_id) == (130004, 130005, 3)
    ids = chatglm6b.encode("北京是中国的[MASK]，[gMASK]")
    assert 130000 in ids and ids[-1] == 130001
    assert chatglm6b.decode(ids + [130004, 20, 130005]) == chatglm6b.decode(ids + [20])


def test_chatglm6b_directory_save_and_reload(chatglm6b, tmp_path):
    chatglm6b.save(str(tmp_path))
    again = load_tokenizer(str(tmp_path))
    assert isinstance(again, ChatGLM6BTokenizer) and again.fingerprint() == chatglm6b.fingerprint()


@pytest.fixture(scope="module")
def chatglm2_dir(tmp_path_factory):
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


def test_chatglm2_plain_sop_and_eop_stay_text(chatglm2_dir, tmp_path):
    shutil.copy(chatglm2_dir / "tokenizer.model", tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ChatGLMTokenizer"}))
    tok = load_tokenizer(str(tmp_path))
    plain = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    assert tok.encode("isopropyl eop") == plain.encode("isopropyl eop")
    assert tok.encode("a [gMASK]")[-1] == tok.special_ids["[gMASK]"]


# ChatGLM2-6B's tokenizer.model has 64,789 pieces; its specials and ChatGLM3's role tokens follow
CHATGLM2_PIECES = 64789
CHATGLM3_ROLE_IDS = {"<|system|>": 64794, "<|user|>": 64795, "<|assistant|>": 64796, "<|observation|>": 64797}


@pytest.fixture(scope="module")
def chatglm2_sized_model(tmp_path_factory):
    """A SentencePiece model of ChatGLM2's size: LLaMA-2's 32,000 pieces, then user-defined filler
    pieces up to 64,789. Only the numbering of the special tokens can be checked with it: the
    SentencePiece part itself (the ids of ordinary text) cannot be checked without the real file."""
    shared_data(LLAMA2_MODEL)
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(LLAMA2_MODEL, "rb") as f:
        proto.ParseFromString(f.read())
    for k in range(CHATGLM2_PIECES - len(proto.pieces)):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = f"<filler_{k}>", 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    path = tmp_path_factory.mktemp("chatglm2_sized") / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    return path


def _chatglm_dir(directory, model, config):
    shutil.copy(model, directory / "tokenizer.model")
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "ChatGLMTokenizer", **config}))
    return load_tokenizer(str(directory))


def test_chatglm2_published_numbering(chatglm2_sized_model, tmp_path):
    """Structural only (see the fixture): build_inputs starts as the published ChatGLM2 test vectors do."""
    with open(shared_data(os.path.join(DATA, "tokenizer_test_vectors.json"))) as f:
        vectors = json.load(f)["chatglm2_6b"]
    tok = _chatglm_dir(tmp_path, chatglm2_sized_model, {})
    assert isinstance(tok, ChatGLM2Tokenizer) and tok.version == 2
    assert {t: tok.token_to_id(t) for t in CHATGLM2_SPECIALS} == {
        t: CHATGLM2_PIECES + k for k, t in enumerate(CHATGLM2_SPECIALS)}
    assert tok.vocab_size == CHATGLM2_PIECES + 5
    for case in vectors:
        assert tok.build_inputs(tok.encode(case["text"]))[:2] == case["ids"][:2] == [64790, 64792]
    assert tok.encode("[MASK][gMASK][sMASK]") == [64789, 64790, 64791]


def test_chatglm3_role_tokens_at_published_ids(chatglm2_sized_model, tmp_path):
    """Structural only (see the fixture): ChatGLM3's role tokens, listed in tokenizer_config.json as the
    published file lists its added tokens, get ChatGLM3's published ids."""
    declared = {str(i): {"content": t, "special": True} for t, i in CHATGLM3_ROLE_IDS.items()}
    tok = _chatglm_dir(tmp_path, chatglm2_sized_model, {"added_tokens_decoder": declared})
    assert isinstance(tok, ChatGLM2Tokenizer) and tok.version == 3
    assert {t: tok.token_to_id(t) for t in CHATGLM3_ROLES} == CHATGLM3_ROLE_IDS
    assert tok.encode("<|user|>")[0] == 64795 and tok.encode("<|assistant|>") == [64796]
    assert tok.vocab_size == 64798


def test_chatglm3_declared_ids_that_disagree_are_an_error(chatglm2_sized_model, tmp_path):
    declared = {"64000": {"content": "<|user|>", "special": True}}
    with pytest.raises(ValueError, match=r"give '<\|user\|>' id 64000.*it is 64795"):
        _chatglm_dir(tmp_path, chatglm2_sized_model, {"added_tokens_decoder": declared})
