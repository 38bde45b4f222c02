"""The real MedicalGPT files (pretrain text, ShareGPT SFT, preference pairs) with the LLaMA-2 tokenizer."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from medjax.data.config import data_config
from medjax.data.pipeline import build_eval_batches, build_train_iterator
from medjax.data.preview import NO_LOSS_CLOSE, NO_LOSS_OPEN, describe_rows
from test_data_fixtures import LLAMA2_TOKENIZER, MEDICALGPT, llama2_tokenizer  # noqa: F401  (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = {
    "lm": os.path.join(MEDICALGPT, "pretrain", "*.txt"),
    "sft": os.path.join(MEDICALGPT, "sft", "medical_sft_1K_format.jsonl"),
    "pref": os.path.join(MEDICALGPT, "reward", "dpo_zh_500.jsonl"),
}
SEQ_LEN = 256


def _check_batch(batch, batch_size):
    assert set(batch) == {"tokens", "targets", "loss_mask", "segment_ids", "positions"}
    for key, dtype in [("tokens", np.int32), ("targets", np.int32), ("loss_mask", np.float32),
                       ("segment_ids", np.int32), ("positions", np.int32)]:
        assert batch[key].shape == (batch_size, SEQ_LEN) and batch[key].dtype == dtype, key
    assert not batch["loss_mask"][batch["segment_ids"] == 0].any()
    same_doc_next = batch["segment_ids"][:, 1:] == batch["segment_ids"][:, :-1]
    inside = same_doc_next & (batch["segment_ids"][:, :-1] > 0)
    np.testing.assert_array_equal(batch["targets"][:, :-1][inside], batch["tokens"][:, 1:][inside])
    assert not batch["loss_mask"][:, :-1][~inside].any(), "no loss across a document boundary"


@pytest.mark.parametrize("kind", ["lm", "sft", "pref"])
def test_medicalgpt_files_load_pack_and_resume(kind, llama2_tokenizer):
    tok = llama2_tokenizer
    cfg = data_config(train=FILES[kind])
    make = lambda: build_train_iterator(cfg, tok, kind=kind, seq_len=SEQ_LEN, batch_size=4, seed=3,
                                        model_family="llama")
    it = make()
    batches = [next(it) for _ in range(3)]
    for batch in batches:
        _check_batch(batch, 4)
    state = json.loads(json.dumps(it.get_state()))
    later = [next(it) for _ in range(2)]
    resumed = make()
    resumed.set_state(state)
    for expected in later:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    stats = it.stats()
    assert stats["records_read"] == {"lm": 74, "sft": 1000, "pref": 500}[kind]  # lm: paragraphs
    assert stats.get("bad_records", 0) == 0
    evals = build_eval_batches(cfg, tok, kind=kind, seq_len=SEQ_LEN, batch_size=4, model_family="llama")
    assert evals and all(b["tokens"].shape == (4, SEQ_LEN) for b in evals)


def test_sft_preview_marks_prompts_and_trains_on_answers(llama2_tokenizer):
    tok = llama2_tokenizer
    cfg = data_config(train=FILES["sft"], template="llama2")
    batch = next(build_train_iterator(cfg, tok, kind="sft", seq_len=SEQ_LEN, batch_size=2, seed=0))
    text = describe_rows(batch, tok)
    assert f"{NO_LOSS_OPEN}[INST]" in text and f"[/INST]{NO_LOSS_CLOSE}" in text
    with open(FILES["sft"], encoding="utf-8") as f:
        answers = [json.loads(line)["conversations"][1]["value"] for line in f]
    trained = tok.decode(batch["targets"][0][batch["loss_mask"][0] > 0][:20])
    assert any(a.startswith(trained[:10]) for a in answers), trained


def test_preference_rows_hold_prompt_plus_chosen_then_prompt_plus_rejected(llama2_tokenizer):
    tok = llama2_tokenizer
    cfg = data_config(train=FILES["pref"], template="llama2", shuffle=False, eval_fraction=0.0)
    batch = next(build_train_iterator(cfg, tok, kind="pref", seq_len=1024, batch_size=1, seed=0))
    with open(FILES["pref"], encoding="utf-8") as f:
        first = json.loads(f.readline())
    seg = batch["segment_ids"][0]
    assert set(np.unique(seg)) <= {0, 1, 2}
    for s, response in [(1, first["chosen"]), (2, first["rejected"])]:
        where = seg == s
        trained = batch["targets"][0][where][batch["loss_mask"][0][where] > 0]
        assert tok.decode(trained).strip()[:30] == response.strip()[:30]
        assert first["conversations"][0]["value"][-10:] in tok.decode(batch["tokens"][0][where])


def test_preview_command_writes_the_arrays(tmp_path):
    config = tmp_path / "cfg.py"
    config.write_text(
        "from medjax.data.config import data_config\n"
        "from medjax.train.config import stage_section, training_config\n"
        "def get_config():\n    c = training_config('cp')\n    c.cp = stage_section('cp', with_data=False)\n"
        f"    c.data = data_config(train={FILES['lm']!r})\n    c.model.tokenizer = {LLAMA2_TOKENIZER!r}\n"
        "    c.train.seq_len = 64\n    return c\n")
    dump = tmp_path / "rows.npz"
    out = subprocess.run([sys.executable, "-m", "medjax.data.preview", f"--config={config}", "--num=2",
                          f"--dump={dump}"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    assert "stage=cp kind=lm seq_len=64" in out.stdout and "=== row 1" in out.stdout
    assert "token counts: {'pretrain':" in out.stdout
    arrays = np.load(dump)
    assert sorted(arrays.files) == ["loss_mask", "positions", "segment_ids", "targets", "tokens"]
    assert arrays["tokens"].shape == (2, 64)
