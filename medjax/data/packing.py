"""Segment-aware packing: documents -> fixed-length rows with segment ids and positions.

Row arrays (all [T]): `tokens`; `targets[t]` = the token after `tokens[t]` in the same document
(0 at a document's last token); `loss_mask[t]` = 1 where that target is trained; `segment_ids`
(0 = padding, 1.. = the row's documents in order); `positions` restart at 0 per document.
Documents are placed first-fit from a buffer (the oldest document always goes first, so none
starves), which wastes far less padding than one document per row.
"""
from __future__ import annotations

from typing import Callable, Hashable, Iterable, Iterator

import numpy as np

from medjax.data.encode import Document, Pair

TRUNCATIONS = ("right", "left", "split", "drop")
FIELDS = ("tokens", "targets", "loss_mask", "segment_ids", "positions")
_DTYPES = {"tokens": np.int32, "targets": np.int32, "loss_mask": np.float32,
           "segment_ids": np.int32, "positions": np.int32}


def fit_to_length(doc: Document, seq_len: int, policy: str) -> list[Document]:
    """The pieces of `doc` that go into rows of `seq_len` under a truncation policy."""
    if policy not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {policy!r}")
    n = len(doc)
    if n <= seq_len:
        return [doc] if n else []
    if policy == "right":
        return [Document(doc.ids[:seq_len], doc.trained[:seq_len])]
    if policy == "left":
        return [Document(doc.ids[-seq_len:], doc.trained[-seq_len:])]
    if policy == "split":
        return [Document(doc.ids[s:s + seq_len], doc.trained[s:s + seq_len]) for s in range(0, n, seq_len)]
    return []  # drop


def empty_row(seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    row = {k: np.zeros(seq_len, _DTYPES[k]) for k in FIELDS}
    row["tokens"][:] = pad_id
    return row


def row_from_documents(docs: Iterable[Document], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    row = empty_row(seq_len, pad_id)
    start = 0
    for segment, doc in enumerate(docs, 1):
        n = len(doc)
        if start + n > seq_len:
            raise ValueError(f"documents of {start + n} tokens do not fit a row of {seq_len}")
        sl = slice(start, start + n)
        row["tokens"][sl] = doc.ids
        row["targets"][start:start + n - 1] = doc.ids[1:]
        row["loss_mask"][start:start + n - 1] = doc.trained[1:]
        row["segment_ids"][sl] = segment
        row["positions"][sl] = np.arange(n)
        start += n
    return row


def truncate_pair(pair: Pair, seq_len: int) -> Pair:
    """Fits prompt+chosen and prompt+rejected into one row: keeps the END of the prompt (where the
    question is) and the START of each response, giving responses at least a quarter row each."""
    half = seq_len // 2
    longest = max(len(pair.chosen), len(pair.rejected))
    if 2 * len(pair.prompt) + len(pair.chosen) + len(pair.rejected) <= seq_len:
        return pair
    response_budget = min(longest, max(half - len(pair.prompt), half // 2))
    prompt_budget = min(len(pair.prompt), half - response_budget)
    prompt = pair.prompt[len(pair.prompt) - prompt_budget:] if prompt_budget > 0 else []
    return Pair(prompt, pair.chosen[:response_budget], pair.rejected[:response_budget])


def row_from_pair(pair: Pair, seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """Segment 1 = prompt + chosen, segment 2 = prompt + rejected; loss on the responses only."""
    pair = truncate_pair(pair, seq_len)
    docs = []
    for response in (pair.chosen, pair.rejected):
        ids = np.asarray(pair.prompt + response, np.int32)
        trained = np.asarray([False] * len(pair.prompt) + [True] * len(response), bool)
        docs.append(Document(ids, trained))
    return row_from_documents(docs, seq_len, pad_id)


def stack_rows(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in FIELDS}


class Packer:
    """First-fit packing from a buffer of (key, document); `keys()` is the resumable state."""

    def __init__(self, seq_len: int, buffer_size: int, pad_id: int):
        self.seq_len, self.buffer_size, self.pad_id = seq_len, max(1, buffer_size), pad_id
        self.buffer: list[tuple[Hashable, Document]] = []

    def keys(self) -> list:
        return [key for key, _ in self.buffer]

    def next_row(self, refill: Callable[[], tuple[Hashable, Document] | None]):
        """(row arrays, keys of the documents placed) or None when refill is spent and buffer empty."""
        while len(self.buffer) < self.buffer_size:
            item = refill()
            if item is None:
                break
            if len(item[1]) > self.seq_len:
                raise ValueError(f"document of {len(item[1])} tokens exceeds seq_len {self.seq_len}")
            self.buffer.append(item)
        if not self.buffer:
            return None
        space, taken = self.seq_len, []
        for i, (_, doc) in enumerate(self.buffer):
            if len(doc) <= space:
                taken.append(i)
                space -= len(doc)
        placed = [self.buffer[i] for i in taken]
        taken = set(taken)
        self.buffer = [item for i, item in enumerate(self.buffer) if i not in taken]
        row = row_from_documents([doc for _, doc in placed], self.seq_len, self.pad_id)
        return row, [key for key, _ in placed]


def pack_documents(docs: Iterable[Document], seq_len: int, buffer_size: int = 32,
                   pad_id: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """All documents (each at most seq_len long) packed into rows, in a deterministic order."""
    source = iter(enumerate(docs))
    packer = Packer(seq_len, buffer_size, pad_id)
    while (out := packer.next_row(lambda: next(source, None))) is not None:
        yield out[0]
