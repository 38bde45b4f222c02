"""Preference data through the HA stage: the real MedicalGPT file with the llama2 tokenizer, identical
pairs counted and reported, and a record without chosen/rejected stopping the run before step 0."""
import json
import math
import os
import shutil

import pytest

from medjax.data.records import DataError
from medjax.train.pipeline import run
from shared_data import shared_data
from test_alignment_support import tiny_ha

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
MEDICALGPT_DPO = os.path.join(SHARED, "corpora", "medicalgpt", "reward", "dpo_zh_500.jsonl")
LLAMA2 = os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model")


def test_medicalgpt_dpo_file_trains_with_the_llama2_tokenizer(tmp_path):
    data = str(tmp_path / "dpo_zh_500_plus_identical.jsonl")
    shutil.copy(shared_data(MEDICALGPT_DPO), data)
    with open(data, "a") as f:  # one pair that teaches nothing: counted and skipped
        f.write(json.dumps({"conversations": [{"from": "human", "value": "你好"}],
                            "chosen": "你好！", "rejected": "你好！"}, ensure_ascii=False) + "\n")
    c = tiny_ha("copy", steps=3)
    c.model.tokenizer = shared_data(LLAMA2)
    c.data.train, c.data.eval = data, None
    c.train.seq_len = 128  # the Chinese answers are longer: pairs keep the prompt's end and the answers' start
    summary = run(c, str(tmp_path / "run"))["stages"]["ha"]
    with open(tmp_path / "run" / "ha" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6)
    assert any("eval_pref_accuracy" in r for r in rows)
    stats = summary["data_stats"]
    assert stats["identical_pairs_skipped"] == 1
    assert stats["pairs_truncated"] > 0
    lineage = json.load(open(tmp_path / "run" / "ha" / "lineage.json"))
    from medjax.data.tokenizer import load_tokenizer

    assert lineage["tokenizer_fingerprint"] == load_tokenizer(LLAMA2).fingerprint()


def _prefs_with_a_broken_line(tmp_path, missing: str):
    data = tmp_path / f"prefs_without_{missing}.jsonl"
    good = {"prompt": "Which test confirms coeliac disease?", "chosen": "Serology.", "rejected": "An X-ray."}
    bad = {k: v for k, v in good.items() if k != missing}
    data.write_text("\n".join(json.dumps(r) for r in (good, good, bad, good)) + "\n")
    return str(data)


@pytest.mark.parametrize("missing", ["chosen", "rejected"])
def test_a_pair_without_chosen_or_rejected_is_an_error_naming_file_and_line(tmp_path, missing):
    from medjax.assets import default_paths
    from medjax.data.config import data_config
    from medjax.data.pipeline import build_train_iterator
    from medjax.data.tokenizer import load_tokenizer

    data = _prefs_with_a_broken_line(tmp_path, missing)
    with pytest.raises(DataError, match=f"{data}:3"):
        build_train_iterator(data_config(train=data), load_tokenizer(default_paths()["tokenizer"]), kind="pref",
                             seq_len=64, batch_size=2)


def test_a_broken_pair_stops_the_stage_before_step_0(tmp_path):
    c = tiny_ha("copy", steps=2)
    c.data.train, c.data.eval = _prefs_with_a_broken_line(tmp_path, "rejected"), None
    with pytest.raises(DataError, match=f"{c.data.train}:3"):
        run(c, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "ha" / "checkpoints")
