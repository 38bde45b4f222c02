"""The real LLaMA-2 SentencePiece tokenizer, bare and through transformers."""
import pytest

from medjax.data.tokenizer import load_tokenizer
from tests.hf_fixtures import LLAMA2_TOKENIZER, save_llama2_tokenizer

# transformers' converted tokenizer and raw SentencePiece differ on runs of spaces and tabs, so
# the texts compared here keep to ordinary spacing.
TEXTS = ["Hello world", "Patients with fever and cough should be tested.", "发烧 咳嗽 头痛", "Line one.\nLine two."]


@pytest.fixture(scope="module")
def hf_tokenizer_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("llama2_tok"))
    save_llama2_tokenizer(d)
    return d


def test_bare_sentencepiece_model_loads_and_round_trips():
    tok = load_tokenizer(LLAMA2_TOKENIZER)
    assert tok.kind == "sentencepiece" and tok.vocab_size == 32000
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text


def test_special_ids_agree_with_transformers(hf_tokenizer_dir):
    from transformers import LlamaTokenizer

    bare, via_hf = load_tokenizer(LLAMA2_TOKENIZER), load_tokenizer(hf_tokenizer_dir)
    reference = LlamaTokenizer.from_pretrained(hf_tokenizer_dir)
    for tok in (bare, via_hf):
        assert (tok.bos_id, tok.eos_id, tok.pad_id) == (reference.bos_token_id, reference.eos_token_id,
                                                          reference.pad_token_id)
    for text in TEXTS:
        assert bare.encode(text) == via_hf.encode(text) == reference.encode(text, add_special_tokens=False)


def test_fingerprint_and_save(hf_tokenizer_dir, tmp_path):
    tok = load_tokenizer(hf_tokenizer_dir)
    tok.save(str(tmp_path))
    assert load_tokenizer(str(tmp_path)).fingerprint() == tok.fingerprint()
    assert load_tokenizer(LLAMA2_TOKENIZER).fingerprint() != tok.fingerprint()


def test_missing_tokenizer_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.model"):
        load_tokenizer(str(tmp_path / "nope.model"))
