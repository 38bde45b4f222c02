"""AdamW with warmup then cosine or linear decay, a weight-decay mask and global-norm clipping."""
from __future__ import annotations

import jax
import optax
from flax import nnx

from medjax.parallel.mesh import variable_axes


def learning_rate_schedule(cfg, total_steps: int) -> optax.Schedule:
    """cfg: the `train` section (lr, warmup_steps, schedule, min_lr_ratio)."""
    warmup = min(int(cfg.warmup_steps), max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)
    end = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.min_lr_ratio)
    elif cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.lr, end, decay_steps)
    elif cfg.schedule == "constant":
        decay = optax.constant_schedule(cfg.lr)
    else:
        raise ValueError(f"train.schedule={cfg.schedule!r}: expected cosine, linear or constant")
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), decay], [warmup])


def decays(path: tuple, var: nnx.Variable) -> bool:
    """Weight decay on matrices only: kernels, embeddings and position tables, LoRA A and B (and the
    embedding adapter's), and prompt tuning's soft prompt: it is embedding rows [prompt, embed], decayed
    like the embedding table (transformers' Trainer decays it too; set train.weight_decay=0 to keep it
    free). Never on norm scales or biases.

    Read from the logical axes a variable declares, not from its ndim: under the scanned layer stack a
    norm scale is [L, D] and a bias [L, out], but they still declare one axis (("norm",), (out,)); the
    stack's `layers` axis does not make a matrix."""
    return sum(axis != "layers" for axis in variable_axes(path, var)) >= 2


def decay_mask(tree):
    """`decays` for every variable of an nnx.State (the trainable params, or updates shaped like them)."""
    def one(path, leaf):
        keys = tuple(getattr(p, "key", getattr(p, "name", p)) for p in path)
        if not isinstance(leaf, nnx.Variable):
            raise TypeError(f"weight-decay mask: parameter {'/'.join(map(str, keys))} is a plain "
                            f"{type(leaf).__name__}; pass the nnx.State of the trainable variables (nnx.split), "
                            "whose logical `axes` tell matrices from norm scales and biases")
        return decays(keys, leaf)

    return jax.tree_util.tree_map_with_path(one, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def make_optimizer(cfg, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(cfg, total_steps)
    chain = []
    if cfg.clip_norm and cfg.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(cfg.clip_norm))
    chain.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             mask=decay_mask))
    return optax.chain(*chain), schedule
