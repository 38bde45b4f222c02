"""Per-host data (`data.shards`): the rows of every global batch split into shards, so that a process
reads, tokenizes and packs only the rows its devices hold.

With S shards and batch size B, shard s packs rows [s*B/S, (s+1)*B/S) of every batch from every S-th
record of each source (records s, s+S, ...; stream positions likewise), with its own sampler (seeded
by (seed, S, s)) and packer. The split is a function of S alone, never of the number of processes, so
a batch is the same whichever process builds which shard: 2 processes x 4 devices train on exactly the
batches of 1 process x 8 devices at the same S. Each process's iterator (`ShardedIterator`) runs the
shards holding its rows and yields those rows only, in increasing order (as
`jax.make_array_from_process_local_data` takes them).

Why shards, not one stream split by rows: packing is sequential (a row's documents depend on what
the rows before it left in the packer's buffer), so no process could make row r of a single stream
without making rows 0..r-1 too. What a process still does for all records is reading them (files
are parsed when the iterator is built, as before); tokenizing and packing, the costly part, is
only for its shards' records.

The state of S > 1 shards is {"version", "shards": S, "states": {"s": shard state}}: each process
holds its own shards' states; `merge_states` joins the processes' states into the one a checkpoint
saves, and a process resumes from its own entries. S = 1 keeps the single iterator's state format.
"""
from __future__ import annotations

import collections

import numpy as np

from medjax.data.records import DataError

STATE_VERSION = 1


def shard_count(setting, batch_size: int, rows: list[int] | None) -> int:
    """`data.shards` resolved: 0 = one shard per process holding a distinct part of the batch
    (batch_size / this process's rows; 1 on one process)."""
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"data.shards={setting!r}: expected a whole number >= 0 (0 = one per process)")
    shards = setting or (batch_size // len(rows) if rows and batch_size % len(rows) == 0 else 1)
    if batch_size % shards:
        raise ValueError(f"data.shards={shards}: train.batch_size={batch_size} is not a multiple of it "
                         "(each shard packs batch_size / shards rows of every batch)")
    return shards


def checked_rows(rows, batch_size: int) -> list[int]:
    rows = [int(r) for r in rows]
    if not rows or rows != sorted(set(rows)) or rows[0] < 0 or rows[-1] >= batch_size:
        raise ValueError(f"rows {rows}: expected increasing row indices of a batch of {batch_size}")
    return rows


def shard_seed(seed: int, shard: int, shards: int) -> int:
    return seed if shards == 1 else int(np.random.SeedSequence([seed, shards, shard]).generate_state(1)[0])


class StreamShard:
    """Every `shards`-th position of a stream, from `shard`: its position k is the stream's k*shards + shard."""

    def __init__(self, stream, shard: int, shards: int):
        self.stream, self.shard, self.shards = stream, shard, shards

    def __getitem__(self, position: int):
        return self.stream[position * self.shards + self.shard]


def shard_records(records, shard: int, shards: int, name: str, new_stream):
    """Shard `shard`'s records of one source: a list slice, or a view of a stream of its own."""
    if not isinstance(records, list):  # each shard reads its own stream: shards advance at their own pace
        return StreamShard(new_stream(), shard, shards)
    if len(records) < shards:
        raise DataError(f"source {name!r} has {len(records)} training records, fewer than data.shards={shards}: "
                        "every shard needs at least one; lower data.shards")
    return records[shard::shards]


class ShardedIterator:
    """This process's rows of every global batch, from the shards that hold them."""

    def __init__(self, iterators: dict, shards: int, batch_size: int, rows: list[int], load_counts):
        self.iterators, self.shards, self.batch_size, self.rows = iterators, shards, batch_size, rows
        self.load_counts = load_counts  # records read and skipped while loading, before any shard ran
        per_shard = batch_size // shards
        owned = sorted(iterators)
        # position of each of this process's rows in the owned shards' rows, concatenated
        self._take = np.asarray([owned.index(r // per_shard) * per_shard + r % per_shard for r in rows])

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = [next(self.iterators[s]) for s in sorted(self.iterators)]
        return {key: np.concatenate([p[key] for p in parts])[self._take] for key in parts[0]}

    def token_counts(self) -> dict[str, int]:
        total = collections.Counter()
        for it in self.iterators.values():
            total.update(it.token_counts())
        return dict(total)

    def stats(self) -> dict[str, int]:
        total, passes = collections.Counter({k: v for k, v in self.load_counts.items() if ":" not in k}), 0
        for it in self.iterators.values():
            stats = it.stats()
            passes = max(passes, stats.pop("passes"))
            total.update(stats)
        return dict(sorted({**total, "passes": passes}.items()))

    def get_state(self) -> dict:
        if self.shards == 1:
            return self.iterators[0].get_state()
        return {"version": STATE_VERSION, "shards": self.shards,
                "states": {str(s): it.get_state() for s, it in sorted(self.iterators.items())}}

    def set_state(self, state: dict) -> None:
        saved = state.get("shards", 1)
        if saved != self.shards:
            raise DataError(f"data iterator state was saved with data.shards={saved}, this run has {self.shards}; "
                            f"set data.shards={saved} to resume exactly")
        if self.shards == 1:
            self.iterators[0].set_state(state)
            return
        if state.get("version") != STATE_VERSION:
            raise DataError(f"sharded data state version {state.get('version')} != {STATE_VERSION}")
        for s, it in self.iterators.items():
            if str(s) not in state["states"]:
                raise DataError(f"data iterator state holds shards {sorted(state['states'], key=int)}, "
                                f"not shard {s} of this process")
            it.set_state(state["states"][str(s)])


def merge_states(states: list[dict]) -> dict:
    """The processes' iterator states as one: the union of their shards (a shard two processes both
    build has the same state on both). Unsharded states are the same on every process."""
    if "shards" not in states[0]:
        return states[0]
    merged = {}
    for state in states:
        merged.update(state["states"])
    return {**states[0], "states": dict(sorted(merged.items(), key=lambda kv: int(kv[0])))}
