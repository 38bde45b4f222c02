"""Training checkpoints: Orbax CheckpointManager over params, optimizer state and metadata.

Each step directory holds three items: `params` (every model variable, trainable and frozen, as
one nested dict, so `ckpt:` loading never needs the optimizer), `opt_state` (the optimizer state
and the trainable tree's step/rng), and `meta` (JSON: step, data-iterator state, lineage).
A checkpoint that fails to restore is reported by path, moved aside (kept, never deleted) and the
previous one is tried.
"""
from __future__ import annotations

import os
import time

import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
    pass


class TrainCheckpoints:
    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("params", "train", "meta"))

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, params: dict, train: dict, meta: dict, force: bool = False) -> bool:
        """Starts an (async) save; params is a nested dict of arrays, train holds opt_state/rng/step."""
        return self._manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
            meta=ocp.args.JsonSave(meta)), force=force)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def restore_latest(self, abstract_params, abstract_train):
        """(step, params, train, meta) of the newest checkpoint that restores, or None if there is none."""
        self._manager.reload()
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(abstract_params), train=ocp.args.StandardRestore(abstract_train),
                    meta=ocp.args.JsonRestore()))
                return step, restored["params"], restored["train"], restored["meta"]
            except Exception as e:  # a damaged or half-written step: keep it aside and go back one
                path = self.step_dir(step)
                aside = os.path.join(self.directory, f"corrupt-{step}-{int(time.time())}")
                logging.error("checkpoint %s cannot be restored (%s: %s); moved to %s, trying the previous one",
                              path, type(e).__name__, str(e).splitlines()[0][:200], aside)
                print(f"WARNING: checkpoint {path} is damaged ({type(e).__name__}); kept as {aside}; "
                      "resuming from the previous checkpoint", flush=True)
                os.rename(path, aside)
                self._manager.reload()
        return None

    def restore_params(self, step: int, abstract_params):
        restored = self._manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params)))
        return restored["params"]

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_of(tree):
    """ShapeDtypeStructs (with shardings when the arrays have them) for a restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                        tree)
