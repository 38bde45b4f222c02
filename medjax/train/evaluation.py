"""A stage's held-out loss: every eval batch once, metrics weighted by what each batch labels."""
from __future__ import annotations

import jax

from medjax.parallel.mesh import put_batch


def evaluate(eval_step, params, frozen, batches: list, extras: dict, mesh) -> dict:
    """{"eval_<metric>": weighted mean} over `batches` (host batches); {} without any.
    `eval_step` is TrainProgram.eval_step, called in the activation-sharding context."""
    sums, weight = None, 0.0
    for batch in batches:
        m, w = eval_step(params, frozen, put_batch(batch, mesh), extras)
        m = jax.tree.map(float, m)
        sums = m if sums is None else {k: sums[k] + m[k] for k in sums}
        weight += float(w)
    return {f"eval_{k}": v / max(weight, 1e-9) for k, v in (sums or {}).items()}
