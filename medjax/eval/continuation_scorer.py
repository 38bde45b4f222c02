"""Log-likelihood of continuations after a prompt, batched over many (prompt, continuation) pairs.

Tokenisation: BOS (when the tokenizer has one) + encode(prompt + continuation); the continuation's
tokens are those after the longest common prefix with BOS + encode(prompt). The model reads
(context + continuation)[:-1] and each continuation token is scored at the position before it.
Requests that feed the model the same tokens (e.g. the four one-token letters after one prompt)
share one row. Rows are sorted by length, right-padded to the next power of two (at least
`min_length`) and the last batch is filled with copies, so that few shapes are ever compiled.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Scored:
    logprob: float  # sum over the continuation's tokens
    num_tokens: int
    greedy: bool  # every continuation token is the argmax at its position


def tokenize_pair(tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    context = bos + tokenizer.encode(prompt)
    whole = bos + tokenizer.encode(prompt + continuation)
    common = 0
    while common < min(len(context), len(whole)) and context[common] == whole[common]:
        common += 1
    common = min(common, len(whole) - 1)  # keep at least one continuation token
    if common == 0:
        raise ValueError(f"prompt {prompt[:40]!r}... has no tokens to condition on")
    return whole[:common], whole[common:]


def score_requests(lm, requests: Sequence[tuple[list[int], list[int]]], batch_size: int = 8,
                   min_length: int = 16, on_batch: Callable[[int, int], None] | None = None
                   ) -> list[Scored]:
    """Scores (context ids, continuation ids) pairs with `lm.logits`."""
    rows: dict[tuple[int, ...], list[int]] = {}  # model input -> indices of requests it serves
    for i, (context, continuation) in enumerate(requests):
        if not context or not continuation:
            raise ValueError(f"request {i}: empty context or continuation")
        rows.setdefault(tuple(context + continuation[:-1]), []).append(i)
    order = sorted(rows, key=len, reverse=True)
    pad_id = _pad_id(lm.tokenizer)
    results: list[Scored | None] = [None] * len(requests)
    num_batches = (len(order) + batch_size - 1) // batch_size
    for b in range(num_batches):
        batch = order[b * batch_size:(b + 1) * batch_size]
        length = max(min_length, 1 << (len(batch[0]) - 1).bit_length())
        tokens_BxT = np.full((batch_size, length), pad_id, np.int32)
        for r, row in enumerate(batch + [batch[0]] * (batch_size - len(batch))):
            tokens_BxT[r, :len(row)] = row
        logits_BxTxV = np.asarray(lm.logits(tokens_BxT))
        for r, row in enumerate(batch):
            for i in rows[row]:
                context, continuation = requests[i]
                positions = np.arange(len(context) - 1, len(context) - 1 + len(continuation))
                logprobs_CxV = _log_softmax(logits_BxTxV[r, positions])
                picked = logprobs_CxV[np.arange(len(continuation)), continuation]
                greedy = np.all(logprobs_CxV.argmax(-1) == np.asarray(continuation))
                results[i] = Scored(float(picked.sum()), len(continuation), bool(greedy))
        if on_batch is not None:
            on_batch(b + 1, num_batches)
    return results


def _log_softmax(logits_CxV: np.ndarray) -> np.ndarray:
    # float64 for the normaliser: sums over 32k+ logits lose digits in float32.
    shifted = logits_CxV.astype(np.float64) - logits_CxV.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_id, tokenizer.eos_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
