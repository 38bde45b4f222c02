"""Data pipeline throughput on the MedicalGPT corpora: tokenise + pack tokens/s, and the padding
fraction after packing versus one record per row.

    python benchmarks/data_throughput.py [--seq_len=1024] [--data_dir=../shared/data/corpora/medicalgpt]
        [--tokenizer=../shared/data/tokenizers/llama2/tokenizer.model] [--json=OUT.json]

Each corpus is read once through the training iterator (one pass over every record); timing
covers tokenisation, templating and packing, not file reading.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from medjax.data.config import data_config
from medjax.data.pipeline import build_train_iterator
from medjax.data.tokenizer import load_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")
CORPORA = {"pretrain (lm)": ("lm", "pretrain/*.txt"), "sft (sft)": ("sft", "sft/medical_sft_1K_format.jsonl"),
           "dpo pairs (pref)": ("pref", "reward/dpo_zh_500.jsonl")}


def one_pass(path: str, kind: str, tokenizer, seq_len: int, pack_buffer: int) -> dict:
    cfg = data_config(train=path, eval_fraction=0.0, pack_buffer=pack_buffer)
    it = build_train_iterator(cfg, tokenizer, kind=kind, seq_len=seq_len, batch_size=1, seed=0,
                              model_family="llama")
    total = sum(len(r) for r in it.records)
    start = time.perf_counter()
    while it.stats().get("records_drawn", 0) < total:
        next(it)
    seconds = time.perf_counter() - start
    stats = it.stats()
    real, pad = stats["real_tokens"], stats["padding_tokens"]
    return {"records": total, "rows": stats["rows"], "tokens": real, "seconds": round(seconds, 3),
            "tokens_per_s": round(real / seconds), "padding_fraction": round(pad / (real + pad), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq_len", type=int, default=1024)
    parser.add_argument("--data_dir", default=os.path.join(SHARED, "corpora", "medicalgpt"))
    parser.add_argument("--tokenizer", default=os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model"))
    parser.add_argument("--pack_buffer", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    results = {}
    print(f"seq_len={args.seq_len}  tokenizer={os.path.basename(args.tokenizer)}")
    print(f"{'corpus':18} {'records':>8} {'tokens':>9} {'tok/s packed':>13} {'pad packed':>11} {'pad 1/row':>10}")
    for name, (kind, pattern) in CORPORA.items():
        path = os.path.join(args.data_dir, pattern)
        packed = one_pass(path, kind, tokenizer, args.seq_len, args.pack_buffer)
        single = one_pass(path, kind, tokenizer, args.seq_len, pack_buffer=1)  # one record per row
        results[name] = {"packed": packed, "one_record_per_row": single}
        print(f"{name:18} {packed['records']:>8} {packed['tokens']:>9} {packed['tokens_per_s']:>13,} "
              f"{packed['padding_fraction']:>11.1%} {single['padding_fraction']:>10.1%}")
    print("(pref rows always hold one pair: packing does not apply)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seq_len": args.seq_len, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
