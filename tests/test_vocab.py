"""Medical vocabulary extension (medjax/data/vocab.py, medjax/models/resize_vocab.py) on the real
LLaMA-2 tokenizer and MedicalGPT's Chinese medical text (../shared/data)."""
import json
import os
import random

import numpy as np
import pytest

from hf_fixtures import make_hf_llama, torch_logits
from shared_data import shared_data

LLAMA2 = "tokenizers/llama2/tokenizer.model"
FEVER = "corpora/medicalgpt/pretrain/fever.txt"  # Chinese infectious-disease textbook, 996 lines
ENGLISH = "corpora/medicalgpt/pretrain/en_article_tail500.txt"
GENERAL_ZH = "corpora/medicalgpt/reward/dpo_zh_500.jsonl"  # general (not medical) Chinese
RAG = "corpora/medicalgpt/rag/medical_corpus.txt"  # Chinese medical reference text, 87 lines
ADD = 600


def _extend(tmp_path_factory, corpus, add):
    from medjax.data import vocab

    out = str(tmp_path_factory.mktemp("vocab") / "tokenizer")
    report = vocab.extend_vocabulary(shared_data(LLAMA2), [shared_data(corpus)], add, out)
    merged = vocab.load_proto(os.path.join(out, "tokenizer.model"))
    base = vocab.load_proto(shared_data(LLAMA2))
    return out, report, base, merged


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    return _extend(tmp_path_factory, FEVER, ADD)


@pytest.fixture(scope="module")
def extended_en(tmp_path_factory):
    """English pieces compete with LLaMA's own merges (Chinese ones hardly meet any): this is where the
    scores of new pieces decide whether base text still encodes as before."""
    return _extend(tmp_path_factory, ENGLISH, 200)


def _heldout():
    from medjax.data import vocab

    return vocab.split_heldout(vocab.corpus_lines([shared_data(FEVER)]), 0.05)[1]


def _lines(path, n):
    with open(shared_data(path), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:n]


@pytest.mark.parametrize("which", ["extended", "extended_en"])
def test_merge_keeps_every_base_id_and_the_base_encoding(which, request):
    from medjax.data import vocab

    _, report, base, merged = request.getfixturevalue(which)
    n, add = len(base.pieces), report["added"]
    assert add == (ADD if which == "extended" else 200) and len(merged.pieces) == n + add
    assert [(p.piece, p.score, p.type) for p in merged.pieces[:n]] == [(p.piece, p.score, p.type) for p in base.pieces]
    assert not {p.piece for p in merged.pieces[n:]} & {p.piece for p in base.pieces}  # duplicates skipped
    base_sp, merged_sp = vocab.processor(base), vocab.processor(merged)
    splits = vocab.base_splits(merged, base)
    rng = random.Random(0)
    ids = [i for i, p in enumerate(base.pieces) if p.type in (1, 6)]  # normal and byte pieces
    texts = [base_sp.decode([rng.choice(ids) for _ in range(rng.randint(1, 40))]) for _ in range(1000)]
    texts += _lines(ENGLISH, 100) + _lines(FEVER, 200)
    touched = 0
    for text in texts:
        new = merged_sp.encode(text)
        touched += any(i >= n for i in new)
        # each new id stands for exactly the base pieces the base tokenizer gives there
        assert [j for i in new for j in (splits[i - n] if i >= n else [i])] == base_sp.encode(text), text
    assert touched >= 30  # the corpus lines use new pieces (measured: 188 texts with the Chinese ones, 36 English)


def test_new_pieces_appear_in_medical_text_and_tokens_per_character_drop(extended):
    from medjax.data import vocab

    _, report, base, merged = extended
    held = _heldout()
    merged_sp = vocab.processor(merged)
    with_new = sum(any(i >= len(base.pieces) for i in merged_sp.encode(line)) for line in held)
    assert with_new >= 0.9 * len(held)
    before, after = report["heldout_before"]["per_char"], report["heldout_after"]["per_char"]
    print(f"\nheld-out Chinese medical text ({report['heldout_lines']} lines): tokens/char {before:.3f} -> "
          f"{after:.3f} ({100 * (after / before - 1):+.1f}%) with {ADD} new pieces")
    assert after < 0.7 * before  # measured: 1.650 -> 0.979 (-40.7%)
    # general Chinese text gains too (the pieces are common words), English text is not hurt
    zh = [json.loads(line)["chosen"] for line in _lines(GENERAL_ZH, 50)]
    assert vocab.density(merged_sp, zh).per_char < vocab.density(vocab.processor(base), zh).per_char
    en = _lines(ENGLISH, 100)
    assert vocab.density(merged_sp, en).tokens == vocab.density(vocab.processor(base), en).tokens


def test_medjax_and_transformers_load_the_merged_directory(extended):
    from transformers import LlamaTokenizer, LlamaTokenizerFast

    from medjax.data import vocab
    from medjax.data.tokenizer import load_tokenizer

    out, _, _, merged = extended
    sp = vocab.processor(merged)
    # (no leading whitespace: transformers' LlamaTokenizer splits it unlike SentencePiece, for the base too)
    texts = _heldout()[:20] + _lines(ENGLISH, 20) + ["两个  空格\n换行 und Ümlaut 123 发热39.5℃"]
    tokenizers = [load_tokenizer(out), LlamaTokenizer.from_pretrained(out), LlamaTokenizerFast.from_pretrained(out)]
    assert tokenizers[0].vocab_size == len(merged.pieces)
    for tok in tokenizers:
        encode = tok.encode if hasattr(tok, "kind") else (lambda t, tok=tok: tok.encode(t, add_special_tokens=False))
        for text in texts:
            ids = encode(text)
            assert ids == sp.encode(text), (type(tok), text)
            assert tok.decode(ids) == text


def test_bad_input_is_named(tmp_path):
    from medjax.data import vocab

    with pytest.raises(vocab.VocabError, match="--add=0"):
        vocab.extend_vocabulary(shared_data(LLAMA2), [shared_data(FEVER)], 0, str(tmp_path / "o"))
    with pytest.raises(vocab.VocabError, match="no SentencePiece model"):
        vocab.extend_vocabulary(str(tmp_path), [shared_data(FEVER)], 10, str(tmp_path / "o"))


@pytest.fixture(scope="module")
def base_and_resized(extended, tmp_path_factory):
    """A tiny random LLaMA with the 32,000-piece LLaMA-2 vocabulary, and it resized for the merged one."""
    from medjax.checkpoint.hf_model import load_hf_model
    from medjax.models.resize_vocab import resize_for_tokenizer

    out = extended[0]
    hf_dir = str(tmp_path_factory.mktemp("base_hf"))
    make_hf_llama(hf_dir, seed=3, tokenizer=True, vocab_size=32000)
    base = load_hf_model(hf_dir)
    return base, resize_for_tokenizer(base, out, hf_dir), hf_dir


def test_resized_model_gives_the_base_logits_on_base_text(extended, base_and_resized):
    from medjax.data import vocab

    _, _, base_proto, merged = extended
    base, resized, _ = base_and_resized
    n = len(base_proto.pieces)
    assert resized.config.vocab_size == 32640  # 32,600 rounded up to a multiple of 64
    english = vocab.processor(base_proto).encode(_lines(ENGLISH, 1)[0])[:24]
    tokens = np.asarray([[1] + english], np.int32)
    # equal up to float32 rounding: XLA blocks the head matmul differently for 32,640 columns
    np.testing.assert_allclose(np.asarray(resized(tokens))[..., :n], np.asarray(base(tokens)), rtol=1e-5, atol=1e-5)
    # a new piece's rows are the mean of the rows of its base split, for the embedding and the head
    k = 7
    split = vocab.base_splits(merged, base_proto)[k]
    emb_old, emb_new = np.asarray(base.embed.embedding[...]), np.asarray(resized.embed.embedding[...])
    head_old, head_new = np.asarray(base.lm_head.kernel[...]), np.asarray(resized.lm_head.kernel[...])
    np.testing.assert_allclose(emb_new[n + k], emb_old[split].mean(0), rtol=1e-6)
    np.testing.assert_allclose(head_new[:, n + k], head_old[:, split].mean(1), rtol=1e-6)
    np.testing.assert_allclose(emb_new[-1], emb_old.mean(0), rtol=1e-5, atol=1e-7)  # a padding row


def test_resize_leaves_an_already_extended_model_alone(extended, base_and_resized, tmp_path):
    from medjax.models.resize_vocab import resize_for_tokenizer

    out = extended[0]
    _, resized, _ = base_and_resized
    assert resize_for_tokenizer(resized, out, out) is resized  # a later stage starting from the extended model
    assert resize_for_tokenizer(resized, out, None) is resized  # no tokenizer of its own, rows enough
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.model").write_bytes(open(shared_data(LLAMA2), "rb").read() + b"\n")
    with pytest.raises(ValueError, match="neither the base"):
        resize_for_tokenizer(resized, out, str(other))
    with pytest.raises(ValueError, match="vocab_extension.json"):
        resize_for_tokenizer(resized, shared_data(LLAMA2), None)


def _resized_cp_config(tokenizer_dir, hf_base):
    """A CP stage on the fever lines from an hf: base grown to the extended tokenizer."""
    from medjax.data.config import data_config
    from medjax.train.config import stage_section, training_config

    c = training_config("cp")
    c.cp = stage_section("cp", with_data=False)
    c.data = data_config(train=shared_data(FEVER), eval=None, text_unit="line")
    c.model.update(init=f"hf:{hf_base}", tokenizer=tokenizer_dir, resize_vocab=True)
    return c


def test_cp_stage_grows_trains_and_exports_the_new_rows(extended, base_and_resized, tmp_path):
    """model.resize_vocab in a real stage: hf:base + merged tokenizer -> a resized model that trains the
    new rows; hf/ holds model + merged tokenizer and loads in transformers with the same logits."""
    from transformers import LlamaForCausalLM, LlamaTokenizer

    from medjax.checkpoint.params_io import load_params_model
    from medjax.data.tokenizer import load_tokenizer
    from medjax.data.vocab import tokenizer_lineage
    from medjax.train.pipeline import run

    out = extended[0]
    _, resized, hf_base = base_and_resized
    c = _resized_cp_config(out, hf_base)
    c.train.update(steps=2, seq_len=32, batch_size=2, log_every=1, eval_every=0, eval_batches=1, warmup_steps=1,
                   lr=1e-2)
    c.checkpoint.update(every=2, async_save=False)
    stage = tmp_path / "run" / "cp"
    run(c, str(tmp_path / "run"))
    trained, _ = load_params_model(str(stage))
    assert trained.config.vocab_size == 32640
    size = load_tokenizer(out).vocab_size
    # the embedding rows of the ids the batches held moved, new pieces among them; every head column moved
    moved = np.flatnonzero(np.any(np.asarray(trained.embed.embedding[...]) != np.asarray(resized.embed.embedding[...]),
                                  axis=1))
    assert ((moved >= 32000) & (moved < size)).any()
    before, after = np.asarray(resized.lm_head.kernel[...]), np.asarray(trained.lm_head.kernel[...])
    assert not np.isclose(before[:, 32000:size], after[:, 32000:size]).all(axis=0).any()
    lineage = json.load(open(stage / "lineage.json"))
    assert lineage["tokenizer_fingerprint"] == load_tokenizer(out).fingerprint()
    base_fp = load_tokenizer(shared_data(LLAMA2)).fingerprint()
    assert lineage["base_tokenizer_fingerprint"] == base_fp  # lineage names both tokenizers
    for d in (stage / "tokenizer", stage / "hf"):
        assert tokenizer_lineage(load_tokenizer(str(d)))["base_tokenizer_fingerprint"] == base_fp
    text = _heldout()[1][:40]
    tok = LlamaTokenizer.from_pretrained(stage / "hf")
    hf_ids = [1] + tok.encode(text, add_special_tokens=False)
    assert hf_ids[1:] == load_tokenizer(str(stage / "hf")).encode(text) and max(hf_ids) >= 32000
    assert tok.decode(hf_ids, skip_special_tokens=True) == text
    torch_model = LlamaForCausalLM.from_pretrained(stage / "hf", attn_implementation="eager").eval()
    np.testing.assert_allclose(torch_logits(torch_model, [hf_ids]), np.asarray(trained(np.asarray([hf_ids]))),
                               rtol=1e-4, atol=1e-4)


def test_embed_and_lm_head_adapters_span_the_new_rows(base_and_resized):
    """Fast check of what the slow test below trains: LoRA on the embed and lm_head roles of the resized
    model adapts all 32,640 rows and starts as a no-op."""
    from flax import nnx

    from medjax.peft.config import PeftSettings
    from medjax.peft.setup import apply_peft, backbone_of

    _, resized, _ = base_and_resized
    copy = nnx.merge(*nnx.split(resized))  # apply_peft changes the model it is given
    lora = apply_peft(copy, PeftSettings(method="lora", rank=4, targets="embed,lm_head"))
    assert lora.embed.lora_a.shape == (32640, 4) and lora.lm_head.lora_b.shape == (4, 32640)
    np.testing.assert_array_equal(np.asarray(backbone_of(lora).embed.embedding[...]),
                                  np.asarray(resized.embed.embedding[...]))


@pytest.mark.slow
def test_a_lora_stage_trains_the_new_rows_through_embed_and_lm_head_adapters(extended, base_and_resized, tmp_path):
    from medjax.checkpoint.hf_model import load_hf_model
    from medjax.data.tokenizer import load_tokenizer
    from medjax.train.pipeline import run

    out = extended[0]
    _, resized, hf_base = base_and_resized
    c = _resized_cp_config(out, hf_base)
    c.peft.update(method="lora", rank=4, alpha=8.0, dropout=0.0, targets="embed,lm_head")
    c.train.update(steps=2, seq_len=32, batch_size=2, log_every=1, eval_every=0, eval_batches=1, warmup_steps=1,
                   lr=1e-2)
    c.checkpoint.update(every=2, async_save=False)
    run(c, str(tmp_path / "run"))
    merged = load_hf_model(str(tmp_path / "run" / "cp" / "hf"))  # adapters merged into the exported weights
    n, size = 32000, load_tokenizer(out).vocab_size
    # the embedding adapter moves the rows of the ids the batches held, new pieces among them
    moved = np.flatnonzero(np.any(np.asarray(merged.embed.embedding[...]) != np.asarray(resized.embed.embedding[...]),
                                  axis=1))
    assert ((moved >= n) & (moved < size)).any() and (moved < n).any()
    head_new = (np.asarray(merged.lm_head.kernel[...])[:, n:size], np.asarray(resized.lm_head.kernel[...])[:, n:size])
    assert not np.allclose(*head_new)
    np.testing.assert_array_equal(np.asarray(merged.layers.attn.q.kernel[...]),
                                  np.asarray(resized.layers.attn.q.kernel[...]))  # the rest stays frozen


def test_the_embedded_default_tokenizer_extends_for_configs_vocab_cp_ift(tmp_path):
    """Step one of configs/vocab_cp_ift.py's recipe: the default tokenizer (a bare BPE model with a
    <pad> piece) stays a bare SentencePiece model that medjax loads with its special ids."""
    from medjax.assets import default_paths
    from medjax.data import vocab
    from medjax.data.tokenizer import load_tokenizer
    from medjax.train.config import load_config_file

    paths = default_paths()
    report = vocab.extend_vocabulary(paths["tokenizer"], [paths["cp_train"]], 64, str(tmp_path / "tok"))
    assert sorted(os.listdir(tmp_path / "tok")) == ["tokenizer.model", "vocab_extension.json"]
    base, tok = load_tokenizer(paths["tokenizer"]), load_tokenizer(str(tmp_path / "tok"))
    assert tok.kind == "sentencepiece" and tok.vocab_size == base.vocab_size + 64 == report["vocab_size"]
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (base.bos_id, base.eos_id, base.pad_id)
    assert report["heldout_after"]["per_char"] < report["heldout_before"]["per_char"]
    c = load_config_file(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                      "vocab_cp_ift.py"))
    assert c.vocab.corpus == paths["cp_train"] and c.vocab.add > 0


def test_configs_vocab_cp_ift_extends_then_trains_cp_and_ift_and_a_rerun_changes_nothing(tmp_path):
    """configs/vocab_cp_ift.py in one run (few steps): WORKDIR/vocab is built before CP, both stages train
    with it at the extended size (rounded to 64) and name both tokenizers; a rerun reuses it untouched and
    trains nothing more."""
    from medjax.assets import default_paths
    from medjax.data.tokenizer import load_tokenizer
    from medjax.train.config import load_config_file
    from medjax.train.pipeline import run

    c = load_config_file(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                      "vocab_cp_ift.py"))
    c.vocab.add = 64
    c.model.preset = "test"
    c.cp.steps = c.ift.steps = 2
    c.train.batch_size, c.train.seq_len, c.train.eval_batches = 2, 32, 1
    c.export_hf, c.report, c.eval.tasks, c.checkpoint.async_save = False, False, "", False
    work = tmp_path / "run"
    run(c, str(work))
    vocab_dir = work / "vocab"
    tok, base = load_tokenizer(str(vocab_dir)), load_tokenizer(default_paths()["tokenizer"])
    assert tok.vocab_size == base.vocab_size + 64 and not c.model.tokenizer  # the caller's config untouched
    for stage in ("cp", "ift"):
        lineage = json.loads((work / stage / "lineage.json").read_text())
        assert lineage["tokenizer_fingerprint"] == tok.fingerprint() != base.fingerprint()
        assert lineage["base_tokenizer_fingerprint"] == base.fingerprint()
        assert lineage["model_config"]["vocab_size"] == -(-tok.vocab_size // 64) * 64
        assert lineage["config"]["model"]["tokenizer"] == str(vocab_dir)

    def state():
        files = sorted(p for p in work.rglob("*") if p.is_file() and p.name != "summary.json"
                       and "tensorboard" not in p.parts)
        # metrics.jsonl is reopened for appending on a resume: its lines must stay, its mtime may not
        return {str(p): (p.name == "metrics.jsonl" or p.stat().st_mtime_ns, p.read_bytes()) for p in files
                if vocab_dir in p.parents or p.name == "metrics.jsonl" or "checkpoints" in p.parts}

    before = state()
    assert any("checkpoints" in k for k in before)
    run(c, str(work))
    assert state() == before  # vocab/ neither rebuilt nor touched, no step trained or saved again
    c.vocab.add = 65
    with pytest.raises(ValueError, match="vocab.*other inputs"):
        run(c, str(work))


def test_a_unigram_base_gets_unigram_pieces(tmp_path):
    """A unigram base (trained here on general Chinese) is extended with unigram pieces scored by their
    log-probabilities; base ids stay, other medical text takes fewer tokens and still decodes to itself."""
    import sentencepiece as spm

    from medjax.data import vocab
    from medjax.data.tokenizer import load_tokenizer

    general = [json.loads(line)["chosen"] for line in _lines(GENERAL_ZH, 300)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(general), model_prefix=str(tmp_path / "u"),
                                   model_type="unigram", vocab_size=3000, character_coverage=0.9995,
                                   byte_fallback=True, normalization_rule_name="identity", minloglevel=2)
    report = vocab.extend_vocabulary(str(tmp_path / "u.model"), [shared_data(RAG)], 300, str(tmp_path / "tok"))
    base = vocab.load_proto(str(tmp_path / "u.model"))
    merged = vocab.load_proto(str(tmp_path / "tok" / "tokenizer.model"))
    assert report["model_type"] == "unigram" and merged.trainer_spec.model_type == base.trainer_spec.model_type
    assert [(p.piece, p.score) for p in merged.pieces[:3000]] == [(p.piece, p.score) for p in base.pieces]
    assert report["heldout_after"]["per_char"] < 0.9 * report["heldout_before"]["per_char"]
    tok, base_tok = load_tokenizer(str(tmp_path / "tok")), load_tokenizer(str(tmp_path / "u.model"))
    lines = _heldout()[:10]  # another medical text
    assert sum(max(tok.encode(line)) >= 3000 for line in lines) >= 5
    assert sum(len(tok.encode(x)) for x in lines) < 0.95 * sum(len(base_tok.encode(x)) for x in lines)
    assert all(tok.decode(tok.encode(line)) == line for line in lines)
