"""Training checkpoints: Orbax CheckpointManager over params, optimizer state and metadata.

Each step directory holds three items: `params` (every model variable, trainable and frozen, as
one nested dict, so `ckpt:` loading never needs the optimizer), `train` (the optimizer state and the
trainable tree's step/rng), `meta` (JSON: step, data-iterator state of every process's shards, lineage),
and checksums.json (checkpoint/checksums.py), written once the save has finished.

Restoring tells damage from a mismatch:
- damage (a file missing, unreadable or failing its checksum) moves the step aside as
  `corrupt-<step>-<time>` (kept, never deleted) and the previous step is tried;
- a checkpoint whose keys or shapes differ from the configured model or optimizer is an error naming
  the key and both shapes; nothing is moved.
When steps exist but none restores, restoring raises: a run never starts afresh over its checkpoints.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor

import jax
import orbax.checkpoint as ocp
from etils import epath

from medjax.checkpoint.checksums import Damaged, verify_checksums, write_checksums

ITEMS = ("params", "train", "meta")
CORRUPT = "corrupt"


class CheckpointError(RuntimeError):
    """The checkpoints on disk do not let this run go on; the message says what to do."""


class TrainCheckpoints:
    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._async, self._keep = async_save, keep
        self._is_main = jax.process_index() == 0  # one process writes checksums and moves steps aside
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checksums")
        self._unhashed: list[int] = []  # saved steps whose checksums are not written yet
        self._hashing: list[Future] = []

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, params: dict, train: dict, meta: dict, force: bool = False) -> bool:
        """Starts an (async) save; params is a nested dict of arrays, train holds opt_state/rng/step."""
        self._manager.wait_until_finished()  # Orbax waits here anyway; the previous save is now complete
        self._start_checksums()
        if self._keep == 1:
            self._join_checksums()  # the save below deletes the step being hashed
        saved = self._manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
            meta=ocp.args.JsonSave(meta)), force=force)
        if saved:
            self._unhashed.append(step)
            if not self._async:  # already complete
                self._start_checksums()
        return saved

    def _start_checksums(self) -> None:
        """Hashes the finished saves on a background thread, after joining the earlier hashing: a step is
        garbage-collected (max_to_keep) two saves after it is hashed at the earliest."""
        self._join_checksums()
        if self._is_main:
            self._hashing = [self._hasher.submit(write_checksums, self.step_dir(s), ITEMS) for s in self._unhashed]
        self._unhashed = []

    def _join_checksums(self) -> None:
        for future in self._hashing:
            future.result()
        self._hashing = []

    def wait(self) -> None:
        """Until every save and its checksums are on disk."""
        self._manager.wait_until_finished()
        self._start_checksums()
        self._join_checksums()

    def restore_latest(self, abstract_params, abstract_train, mismatch_hint: str = ""):
        """(step, params, train, meta) of the newest checkpoint that restores; None when there is none.

        Raises CheckpointError when a checkpoint does not fit the targets (its message ends with
        `mismatch_hint`), and when checkpoints exist but every one of them is damaged."""
        self.wait()
        self._manager.reload()
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            self._refuse_fresh_start_over_damaged()
            return None
        moved = []
        for step in steps:
            path, verified = self.step_dir(step), False
            try:
                verified = verify_checksums(path)
                self._check_fits(step, {"params": abstract_params, "train": abstract_train}, mismatch_hint)
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(abstract_params), train=ocp.args.StandardRestore(abstract_train),
                    meta=ocp.args.JsonRestore()))
                return step, restored["params"], restored["train"], restored["meta"]
            except CheckpointError:
                raise
            except Damaged as e:
                problem = str(e)
            except Exception as e:  # noqa: BLE001 -- files that fail to restore are unreadable ...
                if verified:  # ... unless they are byte for byte what was saved: then it is no damage
                    raise CheckpointError(f"checkpoint {path} matches its checksums but does not restore: "
                                          f"{type(e).__name__}: {_first_line(e)}") from e
                problem = f"{type(e).__name__}: {_first_line(e)}"
            moved.append(self.set_aside(step, CORRUPT))
            print(f"WARNING: checkpoint {path} is damaged ({problem}); kept as {moved[-1]}; "
                  "trying the previous checkpoint", flush=True)
        raise CheckpointError(f"no checkpoint in {self.directory} restores; the damaged ones were moved to "
                              f"{', '.join(moved)}. Restore them from a backup, or move them out of "
                              f"{self.directory} to train from step 0")

    def _refuse_fresh_start_over_damaged(self) -> None:
        aside = sorted(d for d in os.listdir(self.directory) if d.startswith(CORRUPT + "-"))
        if aside:
            raise CheckpointError(f"{self.directory} holds only damaged checkpoints ({', '.join(aside)}); "
                                  f"restore them from a backup, or move them out of {self.directory} to "
                                  "train from step 0")

    def _check_fits(self, step: int, targets: dict, hint: str) -> None:
        """Raises CheckpointError naming the keys whose shapes differ (Damaged if unreadable)."""
        problems = []
        for item, target in targets.items():
            item_dir = os.path.join(self.step_dir(step), item)
            try:
                saved = _saved_shapes(ocp.StandardCheckpointHandler().metadata(epath.Path(item_dir)).tree)
            except Exception as e:  # noqa: BLE001 -- metadata that does not parse is damage
                raise Damaged(f"{item_dir} metadata is unreadable ({type(e).__name__}: {_first_line(e)})") from e
            wanted = _target_shapes(target)
            for key in sorted(set(saved) | set(wanted)):
                if saved.get(key) != wanted.get(key):
                    problems.append(f"{item} key {key!r}: saved {_shape_text(saved.get(key))}, "
                                    f"configured {_shape_text(wanted.get(key))}")
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise CheckpointError(f"checkpoint {self.step_dir(step)} does not fit the configured model or optimizer: "
                                  + "; ".join(problems[:5]) + more + (". " + hint if hint else ""))

    def set_aside(self, step: int, kind: str) -> str:
        """Moves a step directory to `<kind>-<step>-<time>` (kept for inspection); returns the new path."""
        self.wait()
        path = self.step_dir(step)
        aside = os.path.join(self.directory, f"{kind}-{step}-{int(time.time())}")
        if self._is_main:
            os.rename(path, aside)
        self._manager.reload()
        return aside

    def restore_params(self, step: int, abstract_params):
        restored = self._manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params)))
        return restored["params"]

    def close(self) -> None:
        self.wait()
        self._hasher.shutdown()
        self._manager.close()


def _saved_shapes(metadata_tree) -> dict[str, tuple]:
    """{"opt_state.1.0.mu.w": shape}: Orbax names each saved array by its key path."""
    return {leaf.name: tuple(leaf.shape) for leaf in jax.tree.leaves(metadata_tree) if hasattr(leaf, "shape")}


def _target_shapes(target) -> dict[str, tuple]:
    """The same names for a restore target (Orbax's own naming, so both sides agree)."""
    names = jax.tree.leaves(ocp.tree.get_param_names(target, include_empty_nodes=False))
    return {name: tuple(leaf.shape) for name, leaf in zip(names, jax.tree.leaves(target))}


def _shape_text(shape) -> str:
    return "nothing" if shape is None else f"shape {shape}"


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [""])[0][:300]


def abstract_of(tree):
    """ShapeDtypeStructs (with shardings when the arrays have them) for a restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                        tree)
