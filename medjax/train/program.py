"""The compiled side of a stage: its jitted train, eval and init steps and every sharding they use.

`build_program` needs only the shapes of the variables: `params` and `frozen` may hold real arrays or
`jax.ShapeDtypeStruct`s (nnx.eval_shape), so a planner can lower and compile the very step the trainer
runs without reading or allocating a weight. Shardings come from the variables' logical axes
(parallel/mesh.py state_shardings), never from where the arrays happen to lie.
"""
from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from medjax.parallel.mesh import batch_sharding, optimizer_shardings, replicated, state_shardings
from medjax.train.objectives import get_objective
from medjax.train.optimizer import make_optimizer
from medjax.train.step import init_state, make_eval_step, make_train_step


@dataclasses.dataclass
class TrainProgram:
    """train_step(state, frozen, batch, extras) -> (state, metrics), donating `state`;
    eval_step(params, frozen, batch, extras) -> (metric sums, weight); init(params) -> state,
    donating the starting weights. Call the steps inside parallel/rules.activation_sharding(mesh)."""
    mesh: object
    train_step: object
    eval_step: object
    init: object
    state_shardings: dict
    frozen_shardings: object
    batch_sharding: object

    def abstract_state(self, params) -> dict:
        """The train state of `params` as shapes with their shardings (what `init` returns, unallocated)."""
        shapes = jax.eval_shape(self.init, params)
        return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes,
                            self.state_shardings)


def build_program(graphdef, params, frozen, objective, optimizer, schedule, mesh, grad_accum: int = 1,
                  seed: int = 0) -> TrainProgram:
    """The stage's steps over `mesh` for the split model (graphdef, trainable params, frozen rest)."""
    params_sh, frozen_sh = state_shardings(params, mesh), state_shardings(frozen, mesh)
    placed = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), params, params_sh)
    state_sh = {"step": replicated(mesh), "params": params_sh,
                "opt_state": optimizer_shardings(optimizer, placed, mesh), "rng": replicated(mesh)}
    batch_sh = batch_sharding(mesh)
    train_step = jax.jit(make_train_step(graphdef, objective, optimizer, schedule, grad_accum),
                         in_shardings=(state_sh, frozen_sh, batch_sh, None), out_shardings=(state_sh, replicated(mesh)),
                         donate_argnums=(0,))
    eval_step = jax.jit(make_eval_step(graphdef, objective), in_shardings=(params_sh, frozen_sh, batch_sh, None),
                        out_shardings=replicated(mesh))
    # the starting weights are donated: the train state owns the only copy from there on
    init = jax.jit(lambda p: init_state(p, optimizer, seed), out_shardings=state_sh, donate_argnums=(0,))
    return TrainProgram(mesh=mesh, train_step=train_step, eval_step=eval_step, init=init, state_shardings=state_sh,
                        frozen_shardings=frozen_sh, batch_sharding=batch_sh)


def stage_program(c, name: str, t, model, trainable_filter, mesh):
    """(graphdef, params, frozen, program) of stage `name` with train settings `t`: the one way the
    trainer (train/stage.py) and the planner (train/plan.py) split a model and build its step."""
    graphdef, params, frozen = nnx.split(model, trainable_filter, ...)
    optimizer, schedule = make_optimizer(t, t.steps)
    program = build_program(graphdef, params, frozen, get_objective(c[name].objective, t.get("loss_chunk")),
                            optimizer, schedule, mesh, t.grad_accum, t.seed)
    return graphdef, params, frozen, program
