"""train/program.py builds the stage's compiled step from shapes alone: what a planner lowers without a
weight is the very program the trainer runs with real weights."""
import jax
import numpy as np
from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.presets import preset
from medjax.models.registry import family_module
from medjax.parallel.mesh import make_mesh, place
from medjax.parallel.rules import activation_sharding
from medjax.train.config import train_section
from medjax.train.objectives import get_objective
from medjax.train.optimizer import make_optimizer
from medjax.train.program import build_program

BATCH, SEQ = 2, 16


def program_of(model, mesh):
    t = train_section()
    graphdef, params, frozen = nnx.split(model, nnx.Param, ...)
    optimizer, schedule = make_optimizer(t, 10)
    program = build_program(graphdef, params, frozen, get_objective("lm"), optimizer, schedule, mesh)
    return program, params, frozen


def test_the_program_builds_from_shapes_with_the_shardings_of_real_weights():
    mesh = make_mesh(devices=jax.devices()[:1])
    cfg = ModelConfig(vocab_size=64, **preset("test"))
    build = lambda: family_module(cfg.family).build(cfg, nnx.Rngs(0))  # noqa: E731

    abstract, params, frozen = program_of(nnx.eval_shape(build), mesh)
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params))  # nothing allocated
    state_shapes = abstract.abstract_state(params)
    frozen_shapes = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), frozen,
                                 abstract.frozen_shardings)
    batch = {k: jax.ShapeDtypeStruct((BATCH, SEQ), dtype, sharding=abstract.batch_sharding)
             for k, dtype in (("tokens", np.int32), ("targets", np.int32), ("loss_mask", np.float32),
                              ("segment_ids", np.int32), ("positions", np.int32))}
    with activation_sharding(mesh):
        assert "main" in abstract.train_step.lower(state_shapes, frozen_shapes, batch, {}).as_text()

    real, params, frozen = program_of(build(), mesh)
    state = real.init(place(params, real.state_shardings["params"]))
    described = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype, x.sharding), tree)  # noqa: E731
    assert described(state) == described(state_shapes)  # what the planner lowers is what the trainer feeds
