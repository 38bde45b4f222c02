"""A stage's held-out loss: every eval batch once, metrics weighted by what each batch labels."""
from __future__ import annotations

import jax

from medjax.parallel.mesh import put_batch


def evaluate(eval_step, params, frozen, batches: list | dict[str, list], extras: dict, mesh) -> dict:
    """{"eval_<metric>": weighted mean} over `batches` (host batches); {} without any.
    `batches` may be named held-out sets {name: batches} (data/eval_sources.py): each is also
    reported as "eval_<metric>/<name>", and "eval_<metric>" is the mean over all of their labelled
    tokens together (as if one source held them all), so summaries that read eval_loss stay meaningful.
    The name "" (eval_sources.SINGLE) adds no per-set keys. `eval_step` is TrainProgram.eval_step,
    called in the activation-sharding context."""
    sets = batches if isinstance(batches, dict) else {"": batches}
    out, total, total_weight = {}, None, 0.0
    for name, group in sets.items():
        sums, weight = _sums(eval_step, params, frozen, group, extras, mesh)
        if sums is None:
            continue
        if name:
            out.update({f"eval_{k}/{name}": v / max(weight, 1e-9) for k, v in sums.items()})
        total = sums if total is None else {k: total[k] + sums[k] for k in total}
        total_weight += weight
    return {**{f"eval_{k}": v / max(total_weight, 1e-9) for k, v in (total or {}).items()}, **out}


def _sums(eval_step, params, frozen, batches: list, extras: dict, mesh) -> tuple[dict | None, float]:
    """The eval step's weighted metric sums over `batches`, and their total weight."""
    sums, weight = None, 0.0
    for batch in batches:
        m, w = eval_step(params, frozen, put_batch(batch, mesh), extras)
        m = jax.tree.map(float, m)
        sums = m if sums is None else {k: sums[k] + m[k] for k in sums}
        weight += float(w)
    return sums, weight
