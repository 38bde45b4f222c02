"""One stage through the real trainer (train/stage.py run_stage), in this process, timed from its log lines.

The benchmarks' shared harness (prefetch.py, train_throughput.py): the config should log every step
(train.log_every=1) with no evaluation and no checkpoint before the end. Each log line is stamped when
the loop writes it, which in the asynchronous loop is once that step's metrics came back; the time
between two log lines is therefore the time of the steps between them, compile and the first batches
left out when the first stamped step is past them. Beside it, the time the loop waited for each batch
(next() on the prefetch feed), which is what prefetch hides.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time

import medjax.train.stage as stage
from medjax.data.prefetch import Prefetcher
from medjax.train.metrics_log import MetricsLog


@dataclasses.dataclass
class StageTiming:
    logged_at: dict  # step -> time.perf_counter() when its log line was written
    losses: dict  # step -> logged loss
    tokens: dict  # step -> real (non-padding) tokens since the log line before
    waits: list  # seconds the loop waited for each batch, in order

    def steps_per_s(self, first: int, last: int) -> float:
        """Steps per second over steps first+1..last (between the log lines of `first` and `last`)."""
        return (last - first) / (self.logged_at[last] - self.logged_at[first])

    def wait_ms(self, first: int, last: int) -> float:
        """Mean ms the loop waited for the batches of steps first+1..last."""
        return 1000 * sum(self.waits[first:last]) / (last - first)


class _SlowReader:
    def __init__(self, it, delay_s: float):
        self.it, self.delay_s = it, delay_s

    def __next__(self):
        time.sleep(self.delay_s)  # a reader waiting on storage or a network
        return next(self.it)

    def __getattr__(self, name):
        return getattr(self.it, name)


def time_stage(c, name: str, mesh, reader_delay_s: float = 0.0) -> StageTiming:
    """Runs stage `name` of config `c` in a fresh temporary workdir; the data reader sleeps
    `reader_delay_s` before each batch."""
    build, write, take = stage.build_train_iterator, MetricsLog.write, Prefetcher.__next__
    timing = StageTiming({}, {}, {}, [])

    def timed_write(self, record):
        if "loss" in record:
            timing.logged_at[record["step"]] = time.perf_counter()
            timing.losses[record["step"]] = record["loss"]
            timing.tokens[record["step"]] = record["tokens"]
        write(self, record)

    def timed_take(self):
        start = time.perf_counter()
        item = take(self)
        timing.waits.append(time.perf_counter() - start)
        return item

    stage.build_train_iterator = lambda *a, **kw: _SlowReader(build(*a, **kw), reader_delay_s)
    MetricsLog.write, Prefetcher.__next__ = timed_write, timed_take
    try:
        with tempfile.TemporaryDirectory() as workdir:
            stage.run_stage(c, name, workdir, mesh)
    finally:
        stage.build_train_iterator, MetricsLog.write, Prefetcher.__next__ = build, write, take
    return timing
