"""The pure, compiled training and evaluation steps shared by every stage.

state = {"step", "params" (the trainable nnx.State), "opt_state", "rng"}; `frozen` holds every
other model variable (the base under LoRA, quantised weights), which the optimizer never sees.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def init_state(params, optimizer, seed: int) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": optimizer.init(params),
            "rng": jax.random.key_data(jax.random.PRNGKey(seed))}


def _microbatches(batch: dict, accum: int) -> dict:
    def split(x):
        if x.shape[0] % accum:
            raise ValueError(f"train.batch_size ({x.shape[0]}) must be a multiple of train.grad_accum ({accum})")
        return x.reshape((accum, x.shape[0] // accum) + x.shape[1:])

    return jax.tree.map(split, batch)


def make_train_step(graphdef, objective, optimizer, schedule, grad_accum: int = 1):
    """Returns train_step(state, frozen, batch, extras) -> (state, metrics); jit it with shardings."""

    def weighted_loss(params, frozen, batch, extras, rng):
        model = nnx.merge(graphdef, params, frozen)
        loss, weight, metrics = objective(model, batch, {**extras, "rng": rng})
        return loss * weight, (weight, jax.tree.map(lambda m: m * weight, metrics))

    grad_fn = jax.value_and_grad(weighted_loss, has_aux=True)

    def train_step(state, frozen, batch, extras):
        rng, step_rng = jax.random.split(jax.random.wrap_key_data(state["rng"]))
        if grad_accum == 1:
            (total, (weight, msum)), grads = grad_fn(state["params"], frozen, batch, extras, step_rng)
        else:
            def accumulate(carry, xs):
                mb, i = xs
                (t, (w, m)), g = grad_fn(state["params"], frozen, mb, extras, jax.random.fold_in(step_rng, i))
                return jax.tree.map(jnp.add, carry, (t, w, m, g)), None

            mbs = _microbatches(batch, grad_accum)
            zeros = jax.tree.map(jnp.zeros_like, state["params"])
            first = jax.eval_shape(lambda: grad_fn(state["params"], frozen, jax.tree.map(lambda x: x[0], mbs),
                                                   extras, step_rng))
            m0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first[0][1][1])
            (total, weight, msum, grads), _ = jax.lax.scan(
                accumulate, (jnp.zeros(()), jnp.zeros(()), m0, zeros), (mbs, jnp.arange(grad_accum)))
        denom = jnp.maximum(weight, 1e-9)
        grads = jax.tree.map(lambda g: g / denom, grads)
        metrics = jax.tree.map(lambda m: m / denom, msum)
        metrics["loss"] = total / denom
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["lr"] = schedule(state["step"])
        metrics["weight"] = weight
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                     "opt_state": opt_state, "rng": jax.random.key_data(rng)}
        return new_state, metrics

    return train_step


def make_eval_step(graphdef, objective):
    """eval_step(params, frozen, batch, extras) -> (weighted metric sums, weight)."""

    def eval_step(params, frozen, batch, extras):
        model = nnx.merge(graphdef, params, frozen)
        loss, weight, metrics = objective(model, batch, {**extras, "rng": None})  # no dropout when evaluating
        metrics = {**metrics, "loss": loss}
        return jax.tree.map(lambda m: m * weight, metrics), weight

    return eval_step
