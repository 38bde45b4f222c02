"""Questions/s of loglik scoring: batched (many questions per model call) versus one question at
a time, same model, same questions, same prompts.

    python benchmarks/eval_throughput.py [--model=hf:DIR | --hidden=64 --layers=2] [--tasks=medqa] [--limit=32]
        [--batch_size=8] [--data_dir=../shared/data/benchmarks] [--json=OUT.json]

Without --model a small random LLaMA (--hidden, --layers; default 64 and 2) with the real LLaMA-2
tokenizer is written to a temporary folder. Both modes run once untimed first, so that compilation is not
counted; the timed pass then scores every question again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")


def write_tiny_llama(directory: str, hidden: int, layers: int) -> None:
    """A random transformers LLaMA plus the LLaMA-2 tokenizer: a stand-in when no model is given."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096)
    LlamaForCausalLM(config).save_pretrained(directory)
    shutil.copy(os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model"), directory)
    LlamaTokenizer.from_pretrained(directory).save_pretrained(directory)


def timed(fn) -> float:
    fn()  # compile every shape first
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="hf:DIR or ckpt:DIR (default: a tiny random LLaMA)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the stand-in model")
    parser.add_argument("--layers", type=int, default=2, help="depth of the stand-in model")
    parser.add_argument("--tasks", default="medqa")
    parser.add_argument("--data_dir", default=os.path.join(SHARED, "benchmarks"))
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import medjax
    from medjax.eval.continuation_scorer import score_requests
    from medjax.eval.fewshot import select_shots
    from medjax.eval.methods.loglik import loglik_items
    from medjax.eval.options import EvalOptions
    from medjax.eval.tasks import load_split

    spec, scratch = args.model, None
    if spec is None:
        scratch = tempfile.mkdtemp(prefix="eval_throughput_")
        write_tiny_llama(scratch, args.hidden, args.layers)
        spec = "hf:" + scratch
    lm = medjax.load(spec)
    options = EvalOptions(batch_size=args.batch_size, progress=lambda _: None)
    results = {"model": spec, "batch_size": args.batch_size, "tasks": {}}
    for task in args.tasks.split(","):
        questions = load_split(task, args.data_dir).questions[:args.limit]
        items = loglik_items(lm, questions, select_shots(questions, [], 0, 0), options)
        every_request = [r for *_, requests in items for r in requests]
        batched = timed(lambda: score_requests(lm, every_request, args.batch_size))
        one_by_one = timed(lambda: [score_requests(lm, requests, 1) for *_, requests in items])
        results["tasks"][task] = {
            "questions": len(questions), "requests": len(every_request),
            "batched_questions_per_s": round(len(questions) / batched, 2),
            "one_at_a_time_questions_per_s": round(len(questions) / one_by_one, 2),
            "speedup": round(one_by_one / batched, 2)}
        print(task, json.dumps(results["tasks"][task]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if scratch:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
