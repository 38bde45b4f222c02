"""SIGTERM (TPU preemption, SLURM time limit) asks the loop to checkpoint and exit cleanly."""
from __future__ import annotations

import signal

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


def requested() -> bool:
    return _requested
