"""Prefill and decode throughput: medjax vs transformers+PyTorch, same tiny config, same batch, same CPU.

Prefill: logits for a [batch, prompt_len] block. Decode: greedy generation of `new_tokens` tokens
per row with a KV cache (both sides), counted as batch x new_tokens tokens. Runs alternate so
both programs see the same machine noise; the table gives medians and the ratio.

  python benchmarks/forward.py [--hidden=256] [--layers=4] [--batch=4] [--prompt_len=128] [--new_tokens=64]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv_heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt_len", type=int, default=128)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import medjax

    torch.set_num_threads(args.threads)
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=int(args.hidden * 8 / 3) // 64 * 64,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg._attn_implementation = "sdpa"
    theirs = LlamaForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        theirs.save_pretrained(d)
        lm = medjax.load("hf:" + d)
    ids = np.random.RandomState(0).randint(3, args.vocab, (args.batch, args.prompt_len)).astype(np.int32)
    ids_t = torch.tensor(ids)
    prompts = ids.tolist()

    def ours_prefill():
        lm.logits(ids)

    def theirs_prefill():
        with torch.no_grad():
            theirs(ids_t)

    def ours_decode():
        lm.generate(prompts, max_new_tokens=args.new_tokens, eos_id=-1)

    def theirs_decode():
        with torch.no_grad():
            theirs.generate(ids_t, attention_mask=torch.ones_like(ids_t), max_new_tokens=args.new_tokens,
                            min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)

    compile_s = timed(ours_prefill) + timed(ours_decode)  # first calls compile
    theirs_prefill(), theirs_decode()
    print(f"config: hidden {args.hidden}, {args.layers} layers, {args.heads} heads ({args.kv_heads} kv), vocab "
          f"{args.vocab}; batch {args.batch}, prompt {args.prompt_len}, new tokens {args.new_tokens}; "
          f"medjax compile (prefill + decode) {compile_s:.1f} s", flush=True)
    results = {k: [] for k in ("ours_prefill", "theirs_prefill", "ours_decode", "theirs_decode")}
    for _ in range(args.rounds):
        for name, fn in (("ours_prefill", ours_prefill), ("theirs_prefill", theirs_prefill),
                         ("ours_decode", ours_decode), ("theirs_decode", theirs_decode)):
            results[name].append(timed(fn))
    prefill_tokens, decode_tokens = args.batch * args.prompt_len, args.batch * args.new_tokens
    print("\n| phase | medjax tokens/s | transformers tokens/s | ratio (medjax / transformers) |\n|---|---|---|---|")
    for phase, tokens in (("prefill", prefill_tokens), ("decode", decode_tokens)):
        ours = tokens / statistics.median(results[f"ours_{phase}"])
        them = tokens / statistics.median(results[f"theirs_{phase}"])
        print(f"| {phase} | {ours:.0f} | {them:.0f} | {ours / them:.2f} |")


if __name__ == "__main__":
    main()
