"""The command-line tools as a user meets them: a mixed benchmark list scores what fits and says
what it skipped, bad input ends in one `error:` line (never a traceback), Orbax's INFO lines stay
hidden, and `generate` follows how the model was trained (chat template after instruction tuning)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import medjax
from medjax.infer.chat_default import trained_chat
from medjax.infer.text import complete, empty_completion_note
from tests.hf_fixtures import make_hf_llama
from tests.shared_data import SHARED_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(SHARED_DATA, "benchmarks")


def cli(module, *flags):
    return subprocess.run([sys.executable, "-m", f"medjax.{module}", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    """hf: and ckpt: copies of a tiny LLaMA with only 256 positions (CMB-Clin's long answers do not fit)."""
    d = tmp_path_factory.mktemp("short")
    make_hf_llama(str(d / "hf"), seed=5, tokenizer=True, vocab_size=32000, max_position_embeddings=256)
    assert cli("convert", f"--src=hf:{d}/hf", f"--dst=ckpt:{d}/ckpt").returncode == 0
    return d


def test_mixed_tasks_score_what_fits_and_name_what_was_skipped(short_model, tmp_path):
    out = cli("evaluate", f"--model=ckpt:{short_model}/ckpt", "--tasks=medqa,cmb_clin", f"--data_dir={BENCHMARKS}",
              "--limit=6", f"--output={tmp_path}/r.json")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    report = json.load(open(tmp_path / "r.json"))
    assert report["tasks"]["medqa"]["n"] == 6 and "skipped" not in report["tasks"]["medqa"]
    clin = report["tasks"]["cmb_clin"]
    assert clin["skipped"] >= 1 and clin["n"] + clin["skipped"] == 6
    assert "[cmb_clin] skipped" in out.stdout and "positions" in out.stdout
    skipped = [json.loads(line) for line in open(tmp_path / "r.predictions.jsonl") if '"skipped"' in line]
    assert len(skipped) == clin["skipped"] and all("256 positions" in p["skipped"] for p in skipped)
    # Orbax logs the restore at INFO ("I1201 18:00:00.0 ..." lines): hidden by default
    assert not re.search(r"^I\d{4} ", out.stderr, re.M), out.stderr[-2000:]


@pytest.mark.parametrize("module, flags, names", [
    ("evaluate", ["--model=ckpt:/nonexistent/run", "--tasks=medqa", f"--data_dir={BENCHMARKS}"], "/nonexistent/run"),
    ("evaluate", ["--model=hf:/x", "--tasks=medqa", f"--data_dir={BENCHMARKS}", "--chat_template=nosuch"], "/x"),
    ("generate", ["--model=ckpt:/nonexistent/run", "--prompt=hi"], "/nonexistent/run"),
    ("generate", ["--model=nosuch:/x", "--prompt=hi"], "nosuch:/x"),
    ("convert", ["--src=ckpt:/nonexistent/run", "--dst=hf:/tmp/never-written"], "/nonexistent/run"),
    ("report", ["/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_input_ends_in_one_error_line_without_a_traceback(module, flags, names):
    out = cli(module, *flags)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "error" in out.stderr and names in out.stderr, out.stderr[-2000:]


def test_generate_uses_the_template_an_instruction_stage_trained_with(short_model, tmp_path):
    stage = tmp_path / "ift"
    shutil.copytree(short_model / "ckpt", stage)
    lineage = {"stage": "ift", "parent": "cp", "config": {"ift": {"kind": "sft", "data": {"template": "llama2"}}}}
    (stage / "lineage.json").write_text(json.dumps(lineage))
    spec = f"ckpt:{stage}"
    lm = medjax.load(spec)
    assert trained_chat(spec, lm.tokenizer)[:2] == (True, "llama2")
    out = cli("generate", f"--model={spec}", "--prompt=Fever?", "--max_new_tokens=4")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "chat template llama2" in out.stderr
    expected = complete(lm, "Fever?", chat=True, template="llama2", max_new_tokens=4)
    assert out.stdout.rstrip("\n") == expected if expected.strip() else "nothing to print" in out.stderr
    plain = cli("generate", f"--model={spec}", "--prompt=Fever?", "--max_new_tokens=4", "--nochat")
    assert "plain prompt (--nochat)" in plain.stderr


def test_a_plain_text_stage_and_a_bare_model_default_to_plain_prompts(short_model, tmp_path):
    lm = medjax.load(f"ckpt:{short_model}/ckpt")
    assert trained_chat(f"ckpt:{short_model}/ckpt", lm.tokenizer)[0] is False  # no lineage, no template
    stage = tmp_path / "cp"
    shutil.copytree(short_model / "ckpt", stage)
    (stage / "lineage.json").write_text(json.dumps({"stage": "cp", "config": {"cp": {"kind": "lm"}}}))
    assert trained_chat(f"ckpt:{stage}", lm.tokenizer)[0] is False


def test_an_empty_completion_is_explained_not_printed_blank():
    assert "ended at once with its stop token" in empty_completion_note([2], True, chat=True)
    note = empty_completion_note([29871, 13], False, chat=False)
    assert "2 token(s) with no visible text" in note and "--chat" in note
