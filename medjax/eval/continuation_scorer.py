"""Log-likelihood of continuations after a prompt, batched over many (prompt, continuation) pairs.

Tokenisation: BOS (when the tokenizer has one) + encode(prompt + continuation); the continuation's
tokens are those after the longest common prefix with BOS + encode(prompt). The model reads
(context + continuation)[:-1] and each continuation token is scored at the position before it
(see target_logprobs.py for the model call).
Requests that feed the model the same tokens (e.g. the four one-token letters after one prompt)
share one row. Rows are sorted by length, right-padded to a bucket length (four buckets per
power of two, so padding wastes at most a third while only a few shapes are ever compiled), and
the last batch is filled with copies of its first row to keep the batch shape fixed.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from medjax.eval.target_logprobs import make_forward


@dataclasses.dataclass(frozen=True)
class Scored:
    logprob: float  # sum over the continuation's tokens
    num_tokens: int
    greedy: bool  # every continuation token is the argmax at its position
    truncated: int = 0  # context tokens dropped to fit the model's maximum length


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
    """Scores (context ids, continuation ids) pairs with the model of `lm`."""
    max_length = getattr(getattr(lm, "config", None), "max_position_embeddings", None)
    fitted = [_fit(context, continuation, max_length, i) for i, (context, continuation) in enumerate(requests)]
    requests, dropped = [f[0] for f in fitted], [f[1] for f in fitted]
    rows: dict[tuple[int, ...], list[int]] = {}  # model input -> indices of requests it serves
    for i, (context, continuation) in enumerate(requests):
        rows.setdefault(tuple(context + continuation[:-1]), []).append(i)
    order = sorted(rows, key=len, reverse=True)
    forward = make_forward(lm)
    pad_id = _pad_id(lm.tokenizer)
    results: list[Scored | None] = [None] * len(requests)
    num_batches = (len(order) + batch_size - 1) // batch_size
    for b in range(num_batches):
        batch = order[b * batch_size:(b + 1) * batch_size]
        length = bucket_length(len(batch[0]), min_length)
        tokens_BxT = np.full((batch_size, length), pad_id, np.int32)
        for r, row in enumerate(batch + [batch[0]] * (batch_size - len(batch))):
            tokens_BxT[r, :len(row)] = row
        wanted, slot, positions_BxP, candidates_BxPxK = _targets(
            [[requests[i] for i in rows[row]] for row in batch], batch_size)
        logprobs_BxPxK, argmax_BxP = forward(tokens_BxT, positions_BxP, candidates_BxPxK)
        for r, row in enumerate(batch):
            for i in rows[row]:
                context, continuation = requests[i]
                total, greedy = 0.0, True
                for j, token in enumerate(continuation):
                    position = len(context) - 1 + j
                    k = slot[r][position]
                    total += float(logprobs_BxPxK[r, k, wanted[r][position].index(token)])
                    greedy = greedy and int(argmax_BxP[r, k]) == token
                results[i] = Scored(total, len(continuation), greedy, dropped[i])
        if on_batch is not None:
            on_batch(b + 1, num_batches)
    return results


def _fit(context: list[int], continuation: list[int], max_length: int | None, index: int):
    """(context, continuation) cut to the model's length by dropping the oldest context tokens
    after the first (BOS), as long prompts with many shots need; and how many were dropped."""
    if not context or not continuation:
        raise ValueError(f"request {index}: empty context or continuation")
    excess = len(context) + len(continuation) - 1 - (max_length or 1 << 62)
    if excess <= 0:
        return (context, continuation), 0
    if excess > len(context) - 2:
        raise ValueError(f"request {index}: continuation of {len(continuation)} tokens does not fit the "
                         f"model's {max_length} positions")
    return (context[:1] + context[1 + excess:], continuation), excess


def _targets(requests_per_row: list[list[tuple[list[int], list[int]]]], batch_size: int):
    """What to read out of each row: the scored positions and the token ids wanted at each
    (several when options share the row). Widths are rounded up so that few shapes compile.

    Returns wanted[r][position] -> ids, slot[r][position] -> index in P, positions_BxP and
    candidates_BxPxK.
    """
    wanted: list[dict[int, list[int]]] = [{} for _ in range(batch_size)]
    for r, requests in enumerate(requests_per_row):
        for context, continuation in requests:
            for j, token in enumerate(continuation):
                ids = wanted[r].setdefault(len(context) - 1 + j, [])
                if token not in ids:
                    ids.append(token)
    num_positions = max(4, _next_power_of_two(max(len(w) for w in wanted)))
    width = max(8, _next_power_of_two(max(len(ids) for w in wanted for ids in w.values())))
    positions_BxP = np.zeros((batch_size, num_positions), np.int32)
    candidates_BxPxK = np.zeros((batch_size, num_positions, width), np.int32)
    slot: list[dict[int, int]] = [{} for _ in range(batch_size)]
    for r, w in enumerate(wanted):
        for k, (position, ids) in enumerate(sorted(w.items())):
            slot[r][position] = k
            positions_BxP[r, k] = position
            candidates_BxPxK[r, k, :len(ids)] = ids
    return wanted, slot, positions_BxP, candidates_BxPxK


def bucket_length(n: int, min_length: int = 16) -> int:
    """Smallest multiple of a quarter of the next power of two that holds n tokens."""
    step = max(min_length, (1 << (n - 1).bit_length()) // 4)
    return -(-n // step) * step


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_id, tokenizer.eos_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
