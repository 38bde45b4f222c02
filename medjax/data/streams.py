"""Sources read lazily, for corpora too large to hold in memory (`streaming: True` in a source).

A stream is read in file order, never shuffled, and restarts from its beginning when it ends.
Records are addressed by their position in that endless read (0, 1, 2, ...), which is what the
sampler and the iterator state store. Nearby positions are kept in a small window so the packer
can look back at the documents it buffers; a position behind the window (only after a resume)
re-opens the stream and skips forward, which costs a read of the skipped records.
"""
from __future__ import annotations

import collections
from typing import Callable, Iterator

from medjax.data.records import DataError, Record

WINDOW = 4096  # positions kept behind the read head


class StreamedRecords:
    def __init__(self, open_stream: Callable[[collections.Counter], Iterator[Record]],
                 counts: collections.Counter, name: str):
        self._open, self._counts, self.name = open_stream, counts, name
        self._length: int | None = None  # known after the first full read
        self._it: Iterator[Record] | None = None
        self._head = 0   # next position the open iterator yields
        self._seen = 0   # positions counted in stats (first read only)
        self._window: collections.OrderedDict[int, Record] = collections.OrderedDict()

    def __getitem__(self, position: int) -> Record:
        if position in self._window:
            return self._window[position]
        if self._it is None or position < self._head:
            self._reopen(position)
        while self._head <= position:
            self._advance()
        return self._window[position]

    def __iter__(self) -> Iterator[Record]:
        """One pass over the stream (for evaluation data)."""
        return self._open(collections.Counter())

    def _reopen(self, position: int) -> None:
        # Restart at the beginning of the pass that holds `position`.
        start = position - position % self._length if self._length else 0
        self._it, self._head = self._open(collections.Counter()), start

    def _advance(self) -> None:
        try:
            record = next(self._it)
        except StopIteration:  # end of the stream: start it again
            self._length = self._length or self._head
            self._it = self._open(collections.Counter())
            record = next(self._it, None)
            if record is None or not self._length:
                raise DataError(f"source {self.name!r} has no records to train on") from None
        if self._head >= self._seen:  # count each record once, the first time it is read
            self._counts["records_read"] += 1
            self._seen = self._head + 1
        self._window[self._head] = record
        self._head += 1
        while len(self._window) > WINDOW:
            self._window.popitem(last=False)
