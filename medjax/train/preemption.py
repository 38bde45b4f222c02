"""SIGTERM (TPU preemption, SLURM time limit) asks the loop to checkpoint and exit cleanly.

SIGTERM reaches each process on its own (or only some of them), but saving a checkpoint is
collective: every process must save the same step, or they deadlock. On one process the loop reads
the flag every step (~1 us). Across processes the flags are agreed only where the loop already reads
the devices: each process adds its flag to the small sum it computes at every log, eval and save step
(train/loop.py LateMetrics: the tokens it logs ride along), and that sum is read with the step's
metrics, on a log step one step late, at the same step on every process. So all processes stop and
save at one step, at most one step after the first log step that follows the signal: within
`train.log_every` steps, with no device-to-host transfer on other steps. Orbax's `reached_preemption`
would need JAX's preemption service, which catches SIGTERM in C++ under jax.distributed only, and
which our Python handler would replace.
"""
from __future__ import annotations

import signal

_requested = False


class Preempted(Exception):
    """Raised after the preemption checkpoint is written; main() exits 0 on it."""


def _handler(signum, frame):
    del signum, frame
    global _requested
    _requested = True
    print("SIGTERM received: saving a checkpoint at the next step all processes agree on, then exiting", flush=True)


def install() -> None:
    signal.signal(signal.SIGTERM, _handler)


def requested() -> bool:
    """Whether this process received SIGTERM (the processes agree on it in train/loop.py)."""
    return _requested
