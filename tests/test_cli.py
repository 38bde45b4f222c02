"""The generate and convert command lines on a tiny model with the real LLaMA-2 tokenizer."""
import os
import subprocess
import sys

import numpy as np
import pytest

import medjax
from tests.hf_fixtures import make_hf_llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tok_model"))
    make_hf_llama(d, seed=3, tokenizer=True, vocab_size=32000)
    return d


def test_generate_command_prints_a_completion(hf_dir):
    out = subprocess.run([sys.executable, "-m", "medjax.generate", f"--model=hf:{hf_dir}", "--prompt=Fever is",
                          "--max_new_tokens=6"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lm = medjax.load(f"hf:{hf_dir}")
    from medjax.infer.text import complete

    assert out.stdout.strip() == complete(lm, "Fever is", max_new_tokens=6).strip()


def test_chat_prompt_uses_the_template(hf_dir):
    from medjax.data.templates import encode_prompt, get_template
    from medjax.infer.text import complete

    lm = medjax.load(f"hf:{hf_dir}")
    ids = encode_prompt([{"role": "user", "content": "Fever?"}], get_template("llama2"), lm.tokenizer)
    expected = lm.tokenizer.decode(lm.generate([ids], max_new_tokens=4, eos_id=lm.tokenizer.eos_id)[0])
    assert complete(lm, "Fever?", chat=True, template="llama2", max_new_tokens=4) == expected


def test_convert_command_round_trips_with_tokenizer(hf_dir, tmp_path):
    for src, dst in ((f"hf:{hf_dir}", f"ckpt:{tmp_path}/c"), (f"ckpt:{tmp_path}/c", f"hf:{tmp_path}/h")):
        out = subprocess.run([sys.executable, "-m", "medjax.convert", f"--src={src}", f"--dst={dst}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
    a, b = medjax.load(f"hf:{hf_dir}"), medjax.load(f"hf:{tmp_path}/h")
    ids = np.array([[1, 450, 3190, 338]])
    np.testing.assert_array_equal(a.logits(ids), b.logits(ids))
    assert b.tokenizer.encode("fever") == a.tokenizer.encode("fever")


def test_convert_command_refuses_bad_flags_and_replaces_with_overwrite(hf_dir, tmp_path):
    def convert(*flags):
        return subprocess.run([sys.executable, "-m", "medjax.convert", f"--src=hf:{hf_dir}", *flags], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    bad = convert(f"--dst=hf:{tmp_path}/bad", "--dtype=bf16")
    assert bad.returncode != 0 and "--dtype='bf16'" in bad.stderr and not os.path.exists(tmp_path / "bad")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors.index.json").write_text('{"weight_map": {}}')  # an earlier sharded export's
    # (without --overwrite it is refused: tests/test_export_atomic.py)
    done = convert(f"--dst=hf:{out}", "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model.safetensors.index.json" not in os.listdir(out)
    ids = np.array([[1, 450, 3190, 338]])
    np.testing.assert_array_equal(medjax.load(f"hf:{out}").logits(ids), medjax.load(f"hf:{hf_dir}").logits(ids))
