"""Batched text generation through `lm.generate`, cut at the start of the next question."""
from __future__ import annotations

from typing import Sequence

from medjax.eval.options import EvalOptions
from medjax.eval.progress import progress_counter
from medjax.eval.prompts import Style


def stop_strings(style: Style) -> list[str]:
    """Where a base model that keeps writing few-shot style starts a new item."""
    return ["\n" + style.question.strip(), "\n" + style.context.strip(), "\n\n\n"]


def generate_texts(lm, prompts: Sequence[str], options: EvalOptions, max_new_tokens: int,
                   temperature: float = 0.0, seed: int = 0, stops: Sequence[str] = (),
                   label: str = "generation batches") -> list[str]:
    tokenizer = lm.tokenizer
    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    texts = []
    size = options.batch_size
    report = progress_counter(options.progress, label)
    num_batches = -(-len(prompts) // size)
    for start in range(0, len(prompts), size):
        chunk = [bos + tokenizer.encode(p) for p in prompts[start:start + size]]
        new_ids = lm.generate(chunk, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=options.top_p if temperature > 0 else 1.0, seed=seed + start,
                              eos_id=tokenizer.eos_id)
        texts += [cut_at_stops(tokenizer.decode(ids), stops) for ids in new_ids]
        report(start // size + 1, num_batches)
    return texts


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min([text.find(s) for s in stops if s in text] or [len(text)])
    return text[:cut]
