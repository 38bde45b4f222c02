"""Reference models for DPO/IPO (config.ha.reference): copy, base or precomputed.

- copy: a frozen copy of the starting weights, held in the objective's `extras`.
- base: with LoRA/QLoRA, the policy itself with its adapters switched off; no second copy.
- precomputed: one pass before training writes every step's reference log-probs beside the run
  (STAGE/reference_logps/); training reads them back with each batch and runs no reference forward.
  The training data order is fixed by the seed, so step k of training sees exactly the batch the
  pass saw at step k (checked by a checksum of the batch); an interrupted pass continues where it
  stopped.
"""
from __future__ import annotations

import json
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.parallel.mesh import put_batch, put_process_batch, replicated, shardings_of
from medjax.peft.lora import adapters_disabled, lora_modules
from medjax.train.chunked_loss import token_nll
from medjax.train.preference import segment_sums, settings_from_config

REFERENCES = ("copy", "base", "precomputed")
PRECOMPUTED_DIR = "reference_logps"
BATCH_KEY = "reference_logps"  # [B, 2] float32 added to each batch under reference=precomputed


def reference_extras(stage_cfg, model) -> dict:
    """The objective extras of a `pref` stage: its settings, and the frozen copy under reference=copy.
    Other stages need none."""
    if stage_cfg.kind != "pref":
        return {}
    settings = settings_from_config(stage_cfg)
    extras = {"preference": settings}
    if settings.reference == "copy":
        state = nnx.state(model)
        extras["reference_state"] = jax.jit(lambda s: jax.tree.map(jnp.copy, s),
                                            out_shardings=shardings_of(state))(state)
    elif settings.reference == "base":
        if not lora_modules(model):
            raise ValueError("config.ha.reference='base' runs the policy with its LoRA adapters switched off, "
                             "but this model has no LoRA adapters: enable LoRA/QLoRA or use reference='copy'")
    return extras


def _forward_logps(model, batch, loss_chunk=None):
    """Per-response log-prob sums [B, 2]; the head runs `loss_chunk` tokens at a time (chunked_loss.py)."""
    return segment_sums(-token_nll(model, batch, chunk=loss_chunk), batch)[0]


def reference_logps(model, batch, extras, loss_chunk=None):
    """The reference's per-response log-prob sums [B, 2] for `model`'s batch, or None (ORPO, SimPO)."""
    reference = extras["preference"].reference
    if reference == "none":
        return None
    if reference == "precomputed":
        if BATCH_KEY not in batch:
            raise ValueError(f"reference=precomputed but the batch has no {BATCH_KEY!r}")
        return batch[BATCH_KEY]
    if reference == "copy":
        logps = _forward_logps(nnx.merge(nnx.graphdef(model), extras["reference_state"]), batch, loss_chunk)
    elif reference == "base":
        with adapters_disabled(model):
            logps = _forward_logps(model, batch, loss_chunk)
    else:
        raise ValueError(f"config.ha.reference={reference!r}: expected one of {REFERENCES}")
    return jax.lax.stop_gradient(logps)


# -- precomputed ---------------------------------------------------------------------------------
def _batch_checksum(batch) -> int:
    return zlib.crc32(np.ascontiguousarray(batch["tokens"]).tobytes() +
                      np.ascontiguousarray(batch["loss_mask"]).tobytes())


def _weight_sums(state) -> list[float]:
    return [float(x) for x in jax.jit(lambda s: [jnp.sum(v.astype(jnp.float32)) for v in jax.tree.leaves(s)])(state)]


class PrecomputedReference:
    """Reference log-probs per training step and for the held-out batches, as written by the pass."""

    def __init__(self, directory: str, logps_NxBx2: np.ndarray, checksums_N: np.ndarray, eval_batches: list):
        self.directory, self.logps, self.checksums, self.eval_batches = directory, logps_NxBx2, checksums_N, eval_batches

    def attach(self, step: int, batch: dict) -> dict:
        """`batch` (training step `step`, counted from 1) with its reference log-probs added."""
        if step > len(self.logps):
            raise ValueError(f"{self.directory} holds reference log-probs for {len(self.logps)} steps, "
                             f"training asked for step {step}")
        if _batch_checksum(batch) != self.checksums[step - 1]:
            raise ValueError(f"step {step}: the training batch differs from the one whose reference log-probs "
                             f"are in {self.directory} (data or seed changed?); delete that directory to recompute")
        return {**batch, BATCH_KEY: self.logps[step - 1]}


class _StepFiles:
    """Two append-only files per process: float32 [rows, 2] log-probs of its rows and a uint32 checksum per step."""

    def __init__(self, directory: str, batch_size: int):
        process = jax.process_index()
        self.logps_path = os.path.join(directory, f"train.p{process}.f32")
        self.sums_path = os.path.join(directory, f"train.p{process}.crc")
        self.row = batch_size * 2

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        logps = np.fromfile(self.logps_path, "<f4") if os.path.exists(self.logps_path) else np.zeros(0, "<f4")
        sums = np.fromfile(self.sums_path, "<u4") if os.path.exists(self.sums_path) else np.zeros(0, "<u4")
        done = min(len(logps) // self.row, len(sums))  # a step cut short by a crash is recomputed
        return logps[: done * self.row].reshape(done, self.row // 2, 2), sums[:done]

    def truncate(self, steps: int) -> None:
        for path, size in ((self.logps_path, steps * self.row * 4), (self.sums_path, steps * 4)):
            with open(path, "ab") as f:
                f.truncate(size)


def _check_identity(path: str, identity: dict) -> None:
    """The pass's inputs (data layout, batch size, starting weights) must match an earlier pass's."""
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump(identity, f, indent=1, sort_keys=True)
        return
    with open(path) as f:
        earlier = json.load(f)
    same_weights = np.allclose(earlier.get("weight_sums", []), identity["weight_sums"], rtol=1e-4, atol=1e-4)
    for key in ("data", "batch_size"):
        if earlier.get(key) != identity[key]:
            raise ValueError(f"{path}: reference log-probs were written for a different {key} "
                             f"({earlier.get(key)!r}, now {identity[key]!r}); delete {os.path.dirname(path)}")
    if not same_weights:
        raise ValueError(f"{path}: reference log-probs were written from different starting weights; "
                         f"delete {os.path.dirname(path)} to recompute")


def precompute_reference(stage_cfg, stage_dir: str, model, new_train_iterator, eval_batches: list, steps: int,
                         batch_size: int, mesh, name: str = "ha") -> PrecomputedReference | None:
    """Under reference=precomputed: runs (or finishes) the reference pass with `model`'s starting
    weights over the first `steps` batches of `new_train_iterator()` (built like the training
    iterator) and over the held-out batches. None otherwise."""
    if stage_cfg.kind != "pref" or settings_from_config(stage_cfg).reference != "precomputed":
        return None
    directory = os.path.join(stage_dir, PRECOMPUTED_DIR)
    os.makedirs(directory, exist_ok=True)
    train_iterator = new_train_iterator()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda st, b: _forward_logps(nnx.merge(graphdef, st), b), out_shardings=replicated(mesh))
    identity = {"data": json.loads(json.dumps(train_iterator.get_state(), default=str)),
                "batch_size": batch_size, "weight_sums": _weight_sums(state)}
    rows = list(train_iterator.rows)  # this process's rows of each batch (per-host data), and their data state:
    header = "header.json" if jax.process_count() == 1 else f"header.p{jax.process_index()}.json"
    _check_identity(os.path.join(directory, header), identity)
    files = _StepFiles(directory, len(rows))
    logps, sums = files.read()
    files.truncate(len(logps))
    if len(logps) < steps:
        print(f"[{name}] reference log-probs: steps {len(logps) + 1}..{steps} -> {directory}", flush=True)
    with open(files.logps_path, "ab") as logp_file, open(files.sums_path, "ab") as sum_file:
        for step in range(1, steps + 1):
            batch = next(train_iterator)
            checksum = _batch_checksum(batch)
            if step <= len(sums):
                if checksum != sums[step - 1]:
                    raise ValueError(f"{directory}: step {step}'s batch differs from the one the earlier pass "
                                     "saw (data changed?); delete that directory to recompute")
                continue
            out = np.asarray(forward(state, put_process_batch(batch, mesh, batch_size)), "<f4")[rows]
            logp_file.write(out.tobytes())
            sum_file.write(np.asarray([checksum], "<u4").tobytes())
            logp_file.flush()
            sum_file.flush()
    logps, sums = files.read()
    with_reference = [{**b, BATCH_KEY: np.asarray(forward(state, put_batch(b, mesh)), np.float32)}
                      for b in eval_batches]
    return PrecomputedReference(directory, logps, sums, with_reference)
