"""SIGTERM (TPU preemption, SLURM time limit) asks the loop to checkpoint and exit cleanly.

SIGTERM reaches each process on its own (or only some of them), but saving a checkpoint is
collective: every process must save the same step, or they deadlock. So the loop asks `agreed()`
once per step, on every process: a max over all processes' flags (parallel/distributed.py
any_process), the same answer everywhere, so every process stops and saves at that same step.
On one process it only reads the flag (~1 us); across processes it is one tiny jitted max per step
(~4 ms between two CPU processes on a loaded 2-core machine). Orbax's `reached_preemption` would
need JAX's preemption service, which catches SIGTERM in C++ under jax.distributed only, and
which our Python handler would replace.
"""
from __future__ import annotations

import signal

from medjax.parallel.distributed import any_process

_requested = False


class Preempted(Exception):
    """Raised after the preemption checkpoint is written; main() exits 0 on it."""


def _handler(signum, frame):
    del signum, frame
    global _requested
    _requested = True
    print("SIGTERM received: saving a checkpoint at the end of this step, then exiting", flush=True)


def install() -> None:
    signal.signal(signal.SIGTERM, _handler)


def agreed() -> bool:
    """Whether any process received SIGTERM. Collective: every process must call it at the same
    step. One process: the local flag, no communication."""
    return any_process(_requested)
