"""Stopping on a non-finite loss or non-finite weights, naming a checkpoint that is good.

The loss computed at step n is the loss of the weights before update n, which are the weights saved
at step n-1. So a non-finite loss at step n condemns the checkpoints of steps n-1 and later (a loop
that reads its metrics a step late may have saved one more): they are moved aside as
`nonfinite-<step>-<time>` and the newest checkpoint left is the one named. A checkpoint is written only
when its weights and optimizer state are finite (`all_finite`, checked at each save), so none holds a NaN.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NONFINITE = "nonfinite"


class NonFiniteLoss(RuntimeError):
    pass


def all_finite(tree) -> jax.Array:
    """True when every floating-point value in `tree` is finite (jit it; one reduction per array)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def loss_not_finite(ckpts, stage: str, loss: float, step: int) -> NonFiniteLoss:
    """The error to raise for a non-finite loss at `step`; moves the checkpoints it condemns aside."""
    return _stop(ckpts, f"stage {stage}: loss became {loss} at step {step}", first_bad=step - 1)


def weights_not_finite(ckpts, stage: str, step: int) -> NonFiniteLoss:
    """The error to raise when the update of `step` made the weights or optimizer state non-finite."""
    return _stop(ckpts, f"stage {stage}: the update of step {step} made the weights or optimizer state non-finite "
                 "(its loss was finite); no checkpoint was written for it", first_bad=step)


def _stop(ckpts, what: str, first_bad: int) -> NonFiniteLoss:
    ckpts.wait()
    moved = [ckpts.set_aside(s, NONFINITE) for s in ckpts.all_steps() if s >= first_bad]
    good = ckpts.latest_step()
    where = ckpts.step_dir(good) if good is not None else "none (no checkpoint before the failure)"
    moved_note = f"; moved aside the checkpoints of the failing weights: {', '.join(moved)}" if moved else ""
    return NonFiniteLoss(f"{what}; stopping. Last good checkpoint: {where}{moved_note} "
                         "(try a lower train.lr or train.clip_norm)")
