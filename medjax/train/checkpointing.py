"""A stage's checkpoints: restore the latest into the train state, save one only when it is finite.

A checkpoint holds every model variable (trainable and frozen: `ckpt:` loads it alone), the optimizer
state, step and RNG, and a meta with the data iterator's state and the stage's numbers so far
(`Progress`), so a rerun after the last step reports the stage's results, not blanks. With per-host
data each process holds the state of its own shards of the data; a save gathers them into the meta
(data/host_shards.py merge_states) and each process resumes from its own shards' entries.
"""
from __future__ import annotations

import dataclasses
import json
import os

import jax
from flax import nnx

from medjax.checkpoint.manager import TrainCheckpoints, abstract_of
from medjax.data.host_shards import merge_states
from medjax.parallel.distributed import gather_json
from medjax.parallel.mesh import replicated
from medjax.train.nan_guard import all_finite, weights_not_finite


@dataclasses.dataclass
class Progress:
    """What a stage has measured so far; saved in each checkpoint's meta."""
    first_loss: float | None = None
    last_loss: float | None = None
    first_eval_loss: float | None = None
    last_eval_loss: float | None = None
    eval_metrics: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict) -> "Progress":
        return cls(**{f.name: meta[f.name] for f in dataclasses.fields(cls) if f.name in meta})


@dataclasses.dataclass
class Restored:
    step: int
    state: dict
    frozen: object
    data_state: dict
    progress: Progress


def _full(params, frozen) -> dict:
    return nnx.to_pure_dict(nnx.merge_state(params, frozen))


def _train_item(state) -> dict:
    return {"opt_state": state["opt_state"], "step": state["step"], "rng": state["rng"]}


class StageCheckpoints:
    def __init__(self, stage_dir: str, name: str, c, mesh, lineage: dict):
        self.name, self.lineage = name, lineage
        self.ckpts = TrainCheckpoints(os.path.join(stage_dir, "checkpoints"), keep=c.checkpoint.keep,
                                      async_save=c.checkpoint.async_save)
        self._finite = jax.jit(all_finite, out_shardings=replicated(mesh))

    def restore(self, graphdef, trainable_filter, state: dict, frozen, mismatch_hint: str) -> Restored | None:
        """The latest good checkpoint in the layout (and shardings) of `state` and `frozen`; None if none."""
        restored = self.ckpts.restore_latest(abstract_of(_full(state["params"], frozen)),
                                             abstract_of(_train_item(state)), mismatch_hint=mismatch_hint)
        if restored is None:
            return None
        step, full_params, train, meta = restored
        whole = nnx.merge_state(state["params"], frozen)
        nnx.replace_by_pure_dict(whole, full_params)
        _, params, frozen = nnx.split(nnx.merge(graphdef, whole), trainable_filter, ...)
        return Restored(step, {"params": params, **train}, frozen, meta["data"], Progress.from_meta(meta))

    def save(self, step: int, state: dict, frozen, data_state: dict, progress: Progress, force: bool = False) -> None:
        """Writes `step` when the weights and optimizer state are finite; raises NonFiniteLoss otherwise."""
        if not bool(self._finite((state["params"], state["opt_state"]))):
            raise weights_not_finite(self.ckpts, self.name, step)
        data_state = merge_states(gather_json(data_state))  # every process's shards (collective, like the save)
        meta = {"step": step, "data": data_state, "lineage": self.lineage, **dataclasses.asdict(progress)}
        self.ckpts.save(step, _full(state["params"], frozen), _train_item(state),
                        json.loads(json.dumps(meta, default=str)), force=force)

    def step_dir(self, step: int) -> str:
        return self.ckpts.step_dir(step)

    def latest_step(self) -> int | None:
        return self.ckpts.latest_step()

    def close(self) -> None:
        self.ckpts.close()
