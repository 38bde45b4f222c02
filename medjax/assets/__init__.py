"""medjax's embedded default data: original text, a tokenizer and a small benchmark, so that
`python -m medjax.main --config=configs/cp_ift.py` trains and evaluates with no network.

Everything under `default/` is generated from the hand-written knowledge base in `knowledge.py`
by `python -m medjax.assets.build_default_data` and committed; importing this package is cheap.
"""
from __future__ import annotations

import os

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default")


def default_paths() -> dict[str, str]:
    """Absolute paths of the default data, keyed by role.

    tokenizer: the SentencePiece `.model` file; cp_train: the corpus directory (blank-line
    separated .txt documents); cp_eval: one .txt file; sft_* and pref_*: ShareGPT jsonl files;
    benchmarks_dir: a directory holding `medqa_usmle/sample.jsonl` in the MedQA format.
    """
    return {
        "tokenizer": os.path.join(DEFAULT_DIR, "tokenizer", "tokenizer.model"),
        "cp_train": os.path.join(DEFAULT_DIR, "corpus"),
        "cp_eval": os.path.join(DEFAULT_DIR, "corpus_eval.txt"),
        "sft_train": os.path.join(DEFAULT_DIR, "sft.jsonl"),
        "sft_eval": os.path.join(DEFAULT_DIR, "sft_eval.jsonl"),
        "pref_train": os.path.join(DEFAULT_DIR, "pref.jsonl"),
        "pref_eval": os.path.join(DEFAULT_DIR, "pref_eval.jsonl"),
        "benchmarks_dir": os.path.join(DEFAULT_DIR, "benchmarks"),
    }
