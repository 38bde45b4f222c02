"""GLM through the trainer: blank infilling in the data pipeline (rows, resume, config errors), a
GLM v1 (ChatGLM-6B flavour) CP run with blank infilling, and a GLM-4 LoRA IFT run whose HF export
transformers loads with the same logits. Tiny random models with the embedded default tokenizer."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs.cp import get_config as cp_config
from configs.ift import get_config as ift_config
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.data.encode import Document
from medjax.data.glm_blank_infilling import (BlankTokens, InfillingSettings, blank_infilling, infill_document,
                                             infill_row_targets)
from medjax.data.packing import row_from_documents
from medjax.data.pipeline import build_eval_batches, build_train_iterator
from medjax.data.records import DataError
from medjax.data.tokenizer import load_tokenizer
from shared_data import shared_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = default_paths()
VOCAB = 2048  # the embedded tokenizer's size; the GLM v1 specials sit just above it
SPECIAL = BlankTokens(mask=VOCAB, gmask=VOCAB + 1, sop=VOCAB + 2, eop=VOCAB + 3)
SEQ = 64
SHARED = os.path.join(ROOT, "..", "shared", "data")
CHATGLM6B = os.path.join(SHARED, "tokenizers", "chatglm6b")
FEVER = os.path.join(SHARED, "corpora", "medicalgpt", "pretrain", "fever.txt")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(PATHS["tokenizer"])


def cp_data(mode="mixed", **overrides):
    return data_config(train=PATHS["cp_train"], eval=PATHS["cp_eval"], blank_infilling={"mode": mode, **overrides})


def iterator(tokenizer, cfg, seed=0, seq_len=SEQ, blank_tokens=SPECIAL):
    return build_train_iterator(cfg, tokenizer, kind="lm", seq_len=seq_len, batch_size=4, seed=seed,
                                model_family="glm_v1", blank_tokens=blank_tokens)


def segments(batch):
    """(tokens, targets, loss_mask) of every document in a batch."""
    for b in range(batch["tokens"].shape[0]):
        seg = batch["segment_ids"][b]
        for s in np.unique(seg[seg > 0]):
            slots = np.flatnonzero(seg == s)
            assert np.all(np.diff(slots) == 1) and batch["positions"][b, slots[0]] == 0
            yield batch["tokens"][b, slots], batch["targets"][b, slots], batch["loss_mask"][b, slots]


def check_part_a_part_b(batch, special=SPECIAL):
    """Each document: Part A (no <sop>, one blank per span, no loss) then Part B (<sop> span ... with
    targets span <eop>, loss on every token); padding carries no loss."""
    assert not batch["loss_mask"][batch["segment_ids"] == 0].any()
    modes = set()
    for tokens, targets, loss in segments(batch):
        is_sop = tokens == special.sop
        first = int(np.argmax(is_sop))
        assert is_sop.any() and first > 0
        part_a, part_b = tokens[:first], tokens[first:]
        np.testing.assert_array_equal(loss, np.arange(len(tokens)) >= first)  # loss only on Part B
        n_spans = int(is_sop.sum())
        blanks = np.isin(part_a, [special.mask, special.gmask])
        assert blanks.sum() == n_spans and special.eop not in tokens and special.smask not in tokens
        modes.add("gmask" if special.gmask in part_a else "spans")
        if special.gmask in part_a:  # one [gMASK] closing the context
            assert n_spans == 1 and part_a[-1] == special.gmask
        # Part B targets: the span's next token, <eop> closing each span
        span_ends = np.append(is_sop[first + 1:], True)
        np.testing.assert_array_equal(targets[first:][span_ends], special.eop)
        np.testing.assert_array_equal(targets[first:][~span_ends], part_b[1:][~span_ends[:-1]])
        np.testing.assert_array_equal(targets[:first], tokens[1:first + 1])
    return modes


# -- the data pipeline -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["spans", "gmask", "mixed"])
def test_rows_train_only_part_b_of_each_document(tokenizer, mode):
    it = iterator(tokenizer, cp_data(mode))
    modes = set()
    for _ in range(3):
        modes |= check_part_a_part_b(next(it))
    assert modes == ({"spans", "gmask"} if mode == "mixed" else {mode})
    stats = it.stats()
    assert stats["records_truncated"] > 0 and stats["real_tokens"] > 0.8 * 3 * 4 * SEQ  # cut, yet well packed


def test_chatglm6b_tokenizer_documents_lose_their_specials_before_the_transform(tmp_path):
    """ChatGLM-6B's tokenizer wraps text in <sop> ... <eop> (its BOS/EOS): left in, a <sop> would open
    Part B inside the context, and a [MASK] / [sMASK] written in the text would take a span."""
    tokenizer = load_tokenizer(shared_data(CHATGLM6B))
    special = BlankTokens(*(tokenizer.token_to_id(t) for t in ("[MASK]", "[gMASK]", "<sop>", "<eop>", "[sMASK]")))
    assert (tokenizer.bos_id, tokenizer.eos_id) == (special.sop, special.eop)
    text = tmp_path / "fever_with_specials.txt"  # literal blank tokens in the text are dropped too
    text.write_text(open(FEVER, encoding="utf-8").read().replace("。", "[MASK]。", 3).replace("，", "[sMASK]，", 3),
                    encoding="utf-8")
    raw = tokenizer.encode(text.read_text(encoding="utf-8"))
    assert special.mask in raw and special.smask in raw
    cfg = data_config(train=str(text), blank_infilling={"mode": "mixed"}, eval_fraction=0.0)
    it = build_train_iterator(cfg, tokenizer, kind="lm", seq_len=128, batch_size=4, model_family="glm_v1",
                              blank_tokens=special)
    for _ in range(2):
        check_part_a_part_b(next(it), special)


def test_packed_row_targets_equal_the_transform():
    """infill_row_targets (targets from the packed ids) agrees with blank_infilling's own targets."""
    rng = np.random.default_rng(3)
    docs, expected = [], []
    for n, seed, mode in ((9, 0, "spans"), (14, 1, "gmask"), (5, 2, "spans")):
        ids = rng.integers(3, 2000, n).astype(np.int32)
        docs.append(infill_document(Document(ids, np.ones(n, bool)), np.random.default_rng(seed), SPECIAL,
                                    InfillingSettings(mode=mode)))
        expected.append(blank_infilling(ids, np.random.default_rng(seed), SPECIAL, mode=mode))
    row = infill_row_targets(row_from_documents(docs, SEQ, 0), SPECIAL)
    start = 0
    for exp in expected:
        sl = slice(start, start + len(exp["tokens"]))
        for key in ("tokens", "targets", "loss_mask"):
            np.testing.assert_array_equal(row[key][sl], exp[key], err_msg=key)
        start += len(exp["tokens"])
    assert not row["loss_mask"][start:].any()


def test_transform_is_seeded_per_record_and_resumes_bit_exactly(tokenizer):
    cfg = cp_data("mixed")
    it = iterator(tokenizer, cfg)
    for _ in range(3):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(3)]
    resumed = iterator(tokenizer, cfg)
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    again, other_seed = next(iterator(tokenizer, cfg)), next(iterator(tokenizer, cfg, seed=1))
    first = next(iterator(tokenizer, cfg))
    np.testing.assert_array_equal(again["tokens"], first["tokens"])
    assert not np.array_equal(other_seed["tokens"], first["tokens"])


def test_state_from_other_infilling_settings_does_not_resume(tokenizer):
    state = iterator(tokenizer, cp_data("spans")).get_state()
    with pytest.raises(DataError, match="blank_infilling"):
        iterator(tokenizer, cp_data("gmask")).set_state(state)


@pytest.mark.parametrize("truncation", ["right", "split", "left"])
def test_short_rows_keep_every_blank_with_its_span(tokenizer, truncation):
    cfg = cp_data("spans", mask_ratio=0.4, mean_span=1.0)  # many spans: the worst growth
    cfg.truncation = truncation
    it = iterator(tokenizer, cfg, seq_len=16)
    for _ in range(4):
        check_part_a_part_b(next(it))


def test_eval_batches_use_the_same_objective_every_time(tokenizer):
    kwargs = dict(kind="lm", seq_len=SEQ, batch_size=4, model_family="glm_v1", blank_tokens=SPECIAL)
    first = build_eval_batches(cp_data("mixed"), tokenizer, **kwargs)
    assert first
    for batch in first:
        check_part_a_part_b(batch)
    second = build_eval_batches(cp_data("mixed"), tokenizer, **kwargs)
    np.testing.assert_array_equal(first[0]["tokens"], second[0]["tokens"])


def test_off_by_default_and_errors_name_the_key(tokenizer):
    plain = build_train_iterator(data_config(train=PATHS["cp_train"]), tokenizer, kind="lm", seq_len=SEQ,
                                 batch_size=2, model_family="llama")
    assert "blank_infilling" not in plain.get_state() and SPECIAL.sop not in next(plain)["tokens"]
    with pytest.raises(ValueError, match=r"data\.blank_infilling\.mode='spans' needs a GLM v1 model.*'llama'"):
        build_train_iterator(cp_data("spans"), tokenizer, kind="lm", seq_len=SEQ, model_family="llama")
    sft = data_config(train=PATHS["sft_train"], blank_infilling={"mode": "gmask"})
    with pytest.raises(ValueError, match=r"data\.blank_infilling\.mode.*kind 'lm'.*'sft'"):
        build_train_iterator(sft, tokenizer, kind="sft", seq_len=SEQ, blank_tokens=SPECIAL)
    with pytest.raises(ValueError, match=r"data\.blank_infilling\.mode='bert'"):
        iterator(tokenizer, cp_data("bert"))
    with pytest.raises(ValueError, match=r"data\.blank_infilling\.mask_ratio=1\.5"):
        iterator(tokenizer, cp_data("spans", mask_ratio=1.5))
    cfg = cp_data("spans")
    cfg.blank_infilling.span_ratio = 0.2
    with pytest.raises(KeyError, match=r"data\.blank_infilling.*span_ratio"):
        iterator(tokenizer, cfg)
    with pytest.raises(KeyError, match="blank_infilling.'gmask_ratio'"):
        data_config(blank_infilling={"gmask_ratio": 0.2})


# -- the trainer ---------------------------------------------------------------------------------------

def tiny(c, steps, lr):
    c.model.tokenizer = PATHS["tokenizer"]
    c.train.update(steps=steps, seq_len=SEQ, batch_size=4, lr=lr, warmup_steps=2, log_every=1, eval_every=0,
                   eval_batches=1)
    c.checkpoint.async_save = False
    return c


def train_losses(workdir, stage):
    with open(os.path.join(workdir, stage, "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if "loss" in r]


def chatglm6b_dir(path):
    """A random ChatGLM-6B-layout checkpoint (config.json + safetensors) with room for the specials."""
    from flax import nnx

    from medjax.checkpoint.hf_model import save_hf_model
    from medjax.models import glm_v1

    cfg = glm_v1.config_from_hf({
        "model_type": "chatglm", "vocab_size": VOCAB + 64, "hidden_size": 32, "num_layers": 2,
        "num_attention_heads": 4, "inner_hidden_size": 64, "max_sequence_length": 2 * SEQ,
        "mask_token_id": SPECIAL.mask, "gmask_token_id": SPECIAL.gmask, "bos_token_id": SPECIAL.sop,
        "eos_token_id": SPECIAL.eop, "pad_token_id": 0})
    save_hf_model(glm_v1.build(cfg, nnx.Rngs(0)), path)
    return path


def test_chatglm6b_cp_with_blank_infilling_learns(tmp_path):
    from medjax.train.pipeline import run

    base = chatglm6b_dir(str(tmp_path / "base"))
    c = tiny(cp_config(), steps=16, lr=2e-2)
    c.model.init = f"hf:{base}"
    c.data.blank_infilling.mode = "mixed"
    summary = run(c, str(tmp_path / "run"))["stages"]["cp"]
    losses = train_losses(str(tmp_path / "run"), "cp")
    assert len(losses) == 16 and np.all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.5, losses
    assert summary["last_eval_loss"] < summary["first_eval_loss"]
    # the exported ChatGLM-6B layout holds the trained weights: a blank-infilled row scores the same
    import medjax

    ids = np.asarray([[1, 40, 41, SPECIAL.mask, 43, 44, SPECIAL.gmask, SPECIAL.sop, 42, 50, SPECIAL.sop, 45]])
    trained = medjax.load(f"ckpt:{tmp_path}/run")
    np.testing.assert_allclose(medjax.load(f"hf:{summary['hf_dir']}").logits(ids), trained.logits(ids), atol=1e-5)
    assert not np.allclose(medjax.load(f"hf:{base}").logits(ids), trained.logits(ids), atol=1e-3)


def test_preview_shows_blank_infilled_rows_of_the_run_model(tmp_path):
    """medjax.data.preview reads the special ids from the config's hf: model, as the trainer does."""
    from medjax.data.preview import blank_tokens_for, stage_settings

    c = tiny(cp_config(), steps=1, lr=1e-3)
    c.model.init = f"hf:{chatglm6b_dir(str(tmp_path / 'base'))}"
    c.data.blank_infilling.mode = "spans"
    settings = stage_settings(c, None)
    assert blank_tokens_for(c, settings["data"]) == SPECIAL
    batch = next(build_train_iterator(settings["data"], load_tokenizer(PATHS["tokenizer"]), kind="lm", seq_len=SEQ,
                                      batch_size=2, blank_tokens=blank_tokens_for(c, settings["data"])))
    check_part_a_part_b(batch)


def test_blank_infilling_on_a_llama_model_stops_before_step_0(tmp_path):
    from medjax.train.pipeline import run

    c = tiny(cp_config(), steps=1, lr=1e-3)
    c.model.preset = "test"
    c.data.blank_infilling.mode = "spans"
    with pytest.raises(ValueError, match=r"data\.blank_infilling\.mode='spans' needs a GLM v1 model"):
        run(c, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "cp" / "checkpoints")


# -- GLM-4 with LoRA ------------------------------------------------------------------------------

def glm4_dir(path, seed=0):
    """A tiny random transformers Glm4ForCausalLM; norms and biases perturbed so a mapping slip shows."""
    import torch
    import transformers

    cfg = transformers.Glm4Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                  max_position_embeddings=2 * SEQ, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  tie_word_embeddings=False, initializer_range=0.2)  # logits far from uniform
    torch.manual_seed(seed)
    model = transformers.Glm4ForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def glm4_lora_run(tmp_path_factory):
    from medjax.train.pipeline import run

    tmp = tmp_path_factory.mktemp("glm4_lora")
    c = tiny(ift_config(), steps=12, lr=3e-2)
    c.model.init = f"hf:{glm4_dir(str(tmp / 'base'))}"
    c.peft.method, c.peft.targets, c.peft.dropout = "lora", "attn,mlp", 0.0
    run(c, str(tmp / "run"))
    return str(tmp / "run")


def test_glm4_lora_ift_learns(glm4_lora_run):
    losses = train_losses(glm4_lora_run, "ift")
    assert len(losses) == 12 and np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses


def test_glm4_lora_export_loads_in_transformers_with_the_same_logits(glm4_lora_run):
    import torch
    import transformers

    import medjax
    from medjax.peft.lora import LoRALinear

    adapted = medjax.load(f"ckpt:{glm4_lora_run}")
    assert adapted.config.family == "glm4" and isinstance(adapted.model.layers.attn.q, LoRALinear)
    assert np.abs(np.asarray(adapted.model.layers.mlp.down.lora_b[...])).max() > 0
    hf = transformers.Glm4ForCausalLM.from_pretrained(os.path.join(glm4_lora_run, "ift", "hf")).float().eval()
    ids = np.asarray([adapted.tokenizer.encode("Fever and cough for three days, then chest pain.")[:16]], np.int64)
    with torch.no_grad():
        theirs = hf(torch.as_tensor(ids)).logits.float().numpy()
    np.testing.assert_allclose(adapted.logits(ids), theirs, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_glm4_lora_on_fsdp8_matches_one_device(tmp_path):
    base = glm4_dir(str(tmp_path / "base"))
    code = ("import json, sys; sys.path.insert(0, 'tests'); import multidevice_checks as m; "
            f"print(json.dumps(m.glm4_lora_on_meshes({str(tmp_path)!r}, {base!r}, {PATHS['tokenizer']!r})))")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(losses["1dev"]) == 3
    np.testing.assert_allclose(losses["1x8x1"], losses["1dev"], atol=1e-4, rtol=0)
