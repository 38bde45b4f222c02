"""Multi-host start-up: jax.distributed.initialize only when asked.

Asked means MEDJAX_DISTRIBUTED=1 (or auto: a TPU pod worker, or a SLURM job with several tasks).
"""
from __future__ import annotations

import os

import jax


def maybe_initialize() -> bool:
    """Initialises jax.distributed when the environment asks for it; returns whether it did."""
    if os.environ.get("MEDJAX_DISTRIBUTED", "0") in ("0", "", "false"):
        return False
    jax.distributed.initialize()
    return True
