"""Items made on a background thread, a bounded number ahead of the consumer (`data.prefetch`).

    feed = Prefetcher(make_item, count=n, depth=2)   # make_item() is called n times, in order
    item = next(feed)                                # an error in make_item is raised here
    feed.close()                                     # always: stops and joins the thread

depth 0 calls `make_item` on the consumer's thread (synchronous). The items are made strictly in
order by one thread, so a deterministic `make_item` gives the same items at any depth. Tokenizing and
packing are Python; the compiled step releases the GIL while it runs, so the two overlap.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

_POLL_S = 0.1  # how often a blocked producer looks whether the consumer has gone


class Prefetcher:
    def __init__(self, make_item: Callable[[], object], count: int, depth: int):
        if depth < 0:
            raise ValueError(f"prefetch depth must be >= 0, got {depth}")
        self._make, self._left, self._depth = make_item, count, depth
        self._stop = threading.Event()
        self._thread = None
        if depth > 0 and count > 0:
            self._queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._produce, name="prefetch", daemon=True)
            self._thread.start()

    def __iter__(self):
        return self

    def __next__(self):
        if self._left <= 0:
            raise StopIteration
        self._left -= 1
        if self._thread is None:
            return self._make()
        ok, item = self._queue.get()
        if not ok:
            raise item
        return item

    def _produce(self) -> None:
        for _ in range(self._left):
            try:
                entry = (True, self._make())
            except BaseException as e:  # handed to the consumer, which raises it at its next item
                entry = (False, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(entry, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or not entry[0]:
                return

    def close(self) -> None:
        """Stops the producer (items made ahead are dropped) and waits for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
