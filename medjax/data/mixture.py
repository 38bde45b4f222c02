"""Named data sources and the sampler that interleaves them.

Sampling rules (deterministic for a seed; the state is three small integers lists):
  - priority sources (HuatuoGPT-II): the next record comes from source s with probability
    proportional to priority_s x remaining_s, where remaining_s counts the records (times `epochs`)
    that s has not yet delivered in this pass, so high-priority sources drain first;
  - weighted sources (no priority given): probability proportional to weight_s among the sources
    that still have records left in this pass (each delivers `epochs` x its records per pass);
  - replay sources (Meditron GAP-replay): `replay=r` makes a source supply a fraction r of all
    draws, cycling through it for ever, whatever the other sources do.
When every non-replay source is spent, a new pass starts with fresh shuffles.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import numpy as np

from medjax.data.records import DataError

SOURCE_KEYS = ("name", "path", "weight", "priority", "epochs", "replay", "format", "text_unit", "streaming")


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    name: str
    path: str
    weight: float = 1.0
    priority: float | None = None
    epochs: int = 1
    replay: float = 0.0
    format: str | None = None      # None: the data config's format
    text_unit: str | None = None   # None: the data config's text_unit
    streaming: bool = False        # read lazily, in order (see streams.py); not with priority


def parse_sources(spec: Any, what: str = "data.train") -> list[SourceSpec]:
    """A path string or a list of source dicts -> validated `SourceSpec`s."""
    if spec is None or spec == "" or spec == []:
        raise DataError(f"{what} is not set: give a file, glob, directory, hf:NAME or a list of sources")
    if isinstance(spec, str):
        return [SourceSpec(name=_name_of(spec), path=spec)]
    if not isinstance(spec, (list, tuple)):
        raise DataError(f"{what} must be a path or a list of sources, got {type(spec).__name__}")
    sources = []
    for i, item in enumerate(spec):
        item = dict(item) if hasattr(item, "items") else item
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            raise DataError(f"{what}[{i}] must be a dict with at least a 'path'; got {item!r}")
        unknown = sorted(set(item) - set(SOURCE_KEYS))
        if unknown:
            raise DataError(f"{what}[{i}] has unknown keys {unknown}; allowed: {list(SOURCE_KEYS)}")
        item.setdefault("name", _name_of(item["path"]))
        sources.append(_checked_source(SourceSpec(**item), f"{what}[{i}]"))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DataError(f"{what}: source names must be unique, got {names}")
    main = [s for s in sources if not s.replay]
    if not main:
        raise DataError(f"{what}: every source is a replay source; at least one must not be")
    if len({s.priority is None for s in main}) > 1:
        raise DataError(f"{what}: give a priority to every non-replay source or to none")
    if sum(s.replay for s in sources) >= 1:
        raise DataError(f"{what}: replay fractions must sum to less than 1")
    return sources


def _name_of(path: str) -> str:
    """A readable source name: the file's stem, or the folder a glob looks into."""
    path = path.rstrip("/").removeprefix("hf:")
    while glob.has_magic(os.path.basename(path)):
        path = os.path.dirname(path)
    base = os.path.basename(path) or path
    return base.split(".")[0] or base


def _checked_source(s: SourceSpec, where: str) -> SourceSpec:
    if s.weight <= 0:
        raise DataError(f"{where}: weight must be > 0, got {s.weight}")
    if s.priority is not None and s.priority <= 0:
        raise DataError(f"{where}: priority must be > 0, got {s.priority}")
    if int(s.epochs) != s.epochs or s.epochs < 1:
        raise DataError(f"{where}: epochs must be a whole number >= 1, got {s.epochs}")
    if s.streaming and s.priority is not None:
        raise DataError(f"{where}: a streaming source has no known size, so it cannot take a priority "
                        "(priority x remaining records); give it a weight or a replay fraction")
    if not 0 <= s.replay < 1:
        raise DataError(f"{where}: replay must be a fraction in [0, 1), got {s.replay}")
    return dataclasses.replace(s, epochs=int(s.epochs))


class MixtureSampler:
    """Yields (source index, record index) forever; `get_state`/`set_state` resume exactly.
    A size of None marks a streaming source: never spent, read in order (index = position)."""

    def __init__(self, specs: list[SourceSpec], sizes: list[int | None], seed: int, shuffle: bool = True):
        for spec, n in zip(specs, sizes):
            if n is not None and n <= 0:
                raise DataError(f"source {spec.name!r} ({spec.path}) has no records to train on")
        self.specs, self.sizes, self.seed, self.shuffle = specs, list(sizes), int(seed), shuffle
        self.main = [i for i, s in enumerate(specs) if not s.replay]
        self.replay = [i for i, s in enumerate(specs) if s.replay]
        self.priority_mode = specs[self.main[0]].priority is not None
        self.draws, self.pass_index = 0, 0
        self.drawn = [0] * len(specs)
        self._orders: dict[tuple[int, int, int], np.ndarray] = {}

    def get_state(self) -> dict:
        return {"draws": self.draws, "pass": self.pass_index, "drawn": list(self.drawn)}

    def set_state(self, state: dict) -> None:
        if len(state["drawn"]) != len(self.specs):
            raise DataError(f"iterator state has {len(state['drawn'])} sources, the config {len(self.specs)}")
        self.draws, self.pass_index, self.drawn = int(state["draws"]), int(state["pass"]), list(state["drawn"])

    def remaining(self, i: int) -> float:
        if self.sizes[i] is None:
            return float("inf")
        return self.sizes[i] * self.specs[i].epochs - self.drawn[i]

    def probabilities(self) -> np.ndarray:
        """Draw probabilities over the non-replay sources at this point of the pass."""
        if self.priority_mode:
            w = [self.specs[i].priority * self.remaining(i) for i in self.main]
        else:
            w = [self.specs[i].weight * (self.remaining(i) > 0) for i in self.main]
        w = np.asarray(w, np.float64)
        return w / w.sum()

    def next(self) -> tuple[int, int]:
        rng = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        u, v = rng.random(2)
        replay_share = np.asarray([self.specs[i].replay for i in self.replay])
        if self.replay and u < replay_share.sum():
            source = self.replay[int(np.searchsorted(np.cumsum(replay_share), u, side="right"))]
            pass_index = 0  # replay sources cycle across passes
        else:
            if all(self.remaining(i) <= 0 for i in self.main):
                self.pass_index += 1
                for i in self.main:
                    self.drawn[i] = 0
            p = np.cumsum(self.probabilities())
            source = self.main[min(int(np.searchsorted(p, v * p[-1], side="right")), len(self.main) - 1)]
            pass_index = self.pass_index
        k = self.drawn[source]
        self.drawn[source] += 1
        n = self.sizes[source]
        if n is None:
            return source, k
        return source, int(self._order(source, pass_index, k // n)[k % n])

    def _order(self, source: int, pass_index: int, epoch: int) -> np.ndarray:
        key = (source, pass_index, epoch)
        if key not in self._orders:
            if len(self._orders) > 4 * len(self.specs):
                self._orders.clear()
            n = self.sizes[source]
            self._orders[key] = (np.random.default_rng([self.seed, 7919, *key]).permutation(n)
                                 if self.shuffle else np.arange(n))
        return self._orders[key]
