"""Does prefetch hide a slow data reader? Steps per second of the embedded default's CP stage
(configs/cp_ift.py: `tiny` preset, batch 8 x 128, its own tokenizer and corpus) through the real trainer
(train/stage.py run_stage), with data.prefetch 0 and 2, the reader as is and slowed by --delay_ms a batch.

  PYTHONPATH=. python benchmarks/prefetch.py [--steps=40] [--delay_ms=50] [--rounds=2]

Steps per second are timed between the log lines of step 2 and the last step (log_every=1, no eval, no
checkpoint until the end), so the compile and the first batches are left out; beside it, the time the
loop waited for each batch (next() on the feed), which is what prefetch hides and is far less noisy on
a shared machine. Configurations alternate within each round so they share the machine's noise; the
best round of each is printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(steps: int, prefetch: int, delay_s: float) -> tuple[float, float]:
    """(steps per second, mean ms the step loop waited for its batch) over steps 3..steps."""
    import jax

    import medjax.train.stage as stage
    from medjax.data.prefetch import Prefetcher
    from medjax.parallel.mesh import make_mesh
    from medjax.train.metrics_log import MetricsLog

    sys.path.insert(0, os.path.join(ROOT, "configs"))
    import cp_ift

    c = cp_ift.get_config()
    c.stages = "cp"
    c.cp.steps = steps
    c.cp.data.prefetch = prefetch
    c.train.log_every, c.train.eval_every, c.train.eval_batches = 1, 0, 0
    c.checkpoint.every, c.export_hf, c.eval.tasks = 10 ** 6, False, ""

    build, write, take, logged, waits = stage.build_train_iterator, MetricsLog.write, Prefetcher.__next__, {}, []

    class Slowed:
        def __init__(self, it):
            self.it = it

        def __next__(self):
            time.sleep(delay_s)  # a reader waiting on storage or a network
            return next(self.it)

        def __getattr__(self, name):
            return getattr(self.it, name)

    def timed_write(self, record):
        if "loss" in record:
            logged[record["step"]] = time.perf_counter()
        write(self, record)

    def timed_take(self):
        start = time.perf_counter()
        item = take(self)
        waits.append(time.perf_counter() - start)
        return item

    stage.build_train_iterator = lambda *a, **kw: Slowed(build(*a, **kw))
    MetricsLog.write, Prefetcher.__next__ = timed_write, timed_take
    try:
        with tempfile.TemporaryDirectory() as workdir:
            stage.run_stage(c, "cp", workdir, make_mesh(devices=jax.devices()[:1]))
    finally:
        stage.build_train_iterator, MetricsLog.write, Prefetcher.__next__ = build, write, take
    return (steps - 2) / (logged[steps] - logged[2]), 1000 * sum(waits[2:steps]) / (steps - 2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--delay_ms", type=float, default=50.0)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    configs = [(prefetch, delay) for delay in (0.0, a.delay_ms / 1000) for prefetch in (0, 2)]
    best = {k: (0.0, 0.0) for k in configs}
    for r in range(a.rounds):
        for prefetch, delay in configs:
            sps, wait_ms = run_once(a.steps, prefetch, delay)
            best[prefetch, delay] = max(best[prefetch, delay], (sps, wait_ms))
            print(f"round {r + 1}: prefetch={prefetch} reader delay {delay * 1000:.0f} ms: {sps:.2f} steps/s, "
                  f"waited {wait_ms:.1f} ms/step for data", flush=True)
    print("\nbest round of each: steps/s (ms per step the loop waited for its batch)")
    print(f"{'reader delay':>14}  {'prefetch 0':>16}  {'prefetch 2':>16}")
    for delay in (0.0, a.delay_ms / 1000):
        cells = [f"{best[p, delay][0]:.2f} ({best[p, delay][1]:.1f} ms)" for p in (0, 2)]
        print(f"{delay * 1000:>11.0f} ms  {cells[0]:>16}  {cells[1]:>16}")


if __name__ == "__main__":
    main()
