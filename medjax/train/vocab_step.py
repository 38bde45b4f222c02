"""The run's vocabulary extension (config.vocab): before the first stage, the base tokenizer is extended
once into WORKDIR/vocab/ (medjax/data/vocab.py) and every stage trains with it (`model.resize_vocab`).

WORKDIR/vocab/vocab_inputs.json records the hash of what built it (the base model file, the corpus
lines, the number of pieces). A rerun or resume with the same inputs reuses the directory untouched;
with other inputs it stops: the stages' checkpoints were trained on the old ids.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import jax

from medjax.data import vocab
from medjax.train.config import ConfigError

DIR = "vocab"
INPUTS_FILE = "vocab_inputs.json"


def base_tokenizer(c) -> str:
    """The tokenizer the stages would use without the extension: model.tokenizer, else model.init's own,
    else the embedded default's."""
    from medjax.checkpoint.params_io import resolve_ckpt, tokenizer_dir
    from medjax.data.tokenizer import has_tokenizer
    from medjax.specs import parse_spec, resolve_hf_path
    from medjax.train.model_init import default_tokenizer_path

    if c.model.tokenizer:
        return c.model.tokenizer
    if c.model.init == "scratch":
        return default_tokenizer_path()
    s = parse_spec(c.model.init)
    found = resolve_hf_path(s.path) if s.kind == "hf" else tokenizer_dir(resolve_ckpt(s.path)[0])
    if not found or not has_tokenizer(found):
        raise ConfigError(f"config.vocab.corpus: {c.model.init} has no tokenizer to extend; set config.model.tokenizer")
    return found


def _inputs(base: str, corpus: list[str], add: int) -> dict:
    lines = vocab.corpus_lines(corpus)
    info = {"base": base, "base_model_sha256": vocab.file_sha(vocab.base_model_file(base)), "corpus": corpus,
            "corpus_lines_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16], "add": add}
    keyed = [info["base_model_sha256"], info["corpus_lines_sha256"], add]  # paths may move; contents decide
    return dict(info, inputs_sha256=hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16])


def _recorded(out: str) -> dict | None:
    path = os.path.join(out, INPUTS_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def prepare(c, workdir: str):
    """When config.vocab.corpus is set: builds (process 0) or reuses WORKDIR/vocab and returns a copy of
    `c` whose stages use it; otherwise returns `c` itself."""
    v = c.get("vocab")
    if not v or not v.corpus:
        return c
    corpus = [s.strip() for s in v.corpus.split(",") if s.strip()]
    out = os.path.join(workdir, DIR)
    try:
        want = _inputs(base_tokenizer(c), corpus, v.add)
        if jax.process_index() == 0 and not os.path.isdir(out):
            partial = out + ".partial"  # renamed into place whole: a crash mid-build leaves no half directory
            shutil.rmtree(partial, ignore_errors=True)
            vocab.extend_vocabulary(want["base"], corpus, v.add, partial)
            with open(os.path.join(partial, INPUTS_FILE), "w") as f:
                json.dump(want, f, indent=2, ensure_ascii=False)
            os.replace(partial, out)
            print(f"vocab: extended {want['base']} by {v.add} pieces into {out}", flush=True)
    except vocab.VocabError as e:
        raise ConfigError(f"config.vocab: {e}") from None
    if jax.process_count() > 1:  # the others read what process 0 wrote
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("medjax vocab extension")
    have = _recorded(out)
    if have is None:
        raise ConfigError(f"config.vocab: {out} exists but has no {INPUTS_FILE}, so it was not built by this "
                          "step; move it away or use another workdir")
    if have.get("inputs_sha256") != want["inputs_sha256"]:
        raise ConfigError(
            f"config.vocab: {out} was built from other inputs ({os.path.join(out, INPUTS_FILE)}: "
            f"{ {k: have.get(k) for k in ('base', 'corpus', 'add', 'inputs_sha256')} }; now "
            f"{ {k: want[k] for k in ('base', 'corpus', 'add', 'inputs_sha256')} }) and this run's stages were "
            "trained on its ids. Use another workdir, or delete it together with the stage directories")
    print(f"vocab: {out} (inputs {want['inputs_sha256']})", flush=True)
    print("\n".join("vocab: " + line for line in vocab.report_lines(vocab.read_extension(out))), flush=True)
    c = c.copy_and_resolve_references()
    c.model.tokenizer = out
    c.model.resize_vocab = True  # a scratch model is built at the extended size; a loaded one grows
    return c
