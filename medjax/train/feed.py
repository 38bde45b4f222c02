"""The training batches of a stage's steps, ready on the devices, made ahead on a background thread.

Each process makes only its own rows of each global batch (per-host data: data/host_shards.py) and
the global batch is assembled from every process's rows (parallel/mesh.py put_process_batch). Each
item carries what the host knows about its rows (their real tokens, counted from segment_ids here so
the loop never reads them back) and the data iterator's state right after the batch: a
checkpoint saves the state after the last batch the loop consumed, never that of batches made ahead,
so a resumed run draws exactly the batch that comes next.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from medjax.data.config import PREFETCH
from medjax.data.prefetch import Prefetcher
from medjax.parallel.mesh import put_process_batch


@dataclasses.dataclass(frozen=True)
class DataView:
    """The data iterator as of one consumed batch: what a checkpoint and the logs need from it."""
    state: dict
    token_counts: dict
    stats: dict


def view_of(train_it) -> DataView:
    return DataView(train_it.get_state(), train_it.token_counts(), train_it.stats())


@dataclasses.dataclass(frozen=True)
class Fed:
    step: int
    batch: dict  # global device arrays
    tokens: int  # real (non-padding) tokens in this process's rows
    data: DataView  # this process's data iterator
    share: float  # this process's rows / the batch's rows (1.0 on one process)


def prefetch_depth(data_cfg) -> int:
    depth = data_cfg.get("prefetch", PREFETCH)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"data.prefetch={depth!r}: expected a whole number of batches >= 0 (0 = no prefetch)")
    return depth


def batch_feed(train_it, mesh, first_step: int, last_step: int, depth: int, precomputed=None) -> Prefetcher:
    """Fed items for steps first_step..last_step. `train_it` belongs to the feed's thread until close()."""
    steps = iter(range(first_step, last_step + 1))
    share = len(train_it.rows) / train_it.batch_size

    def make() -> Fed:
        step, batch = next(steps), next(train_it)
        if precomputed:
            batch = precomputed.attach(step, batch)
        tokens = int(np.count_nonzero(batch["segment_ids"]))
        return Fed(step, put_process_batch(batch, mesh, train_it.batch_size), tokens, view_of(train_it), share)

    return Prefetcher(make, count=max(last_step - first_step + 1, 0), depth=depth)
