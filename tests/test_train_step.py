"""The pure train step: gradient accumulation equals one big batch; schedules."""
import jax
import numpy as np
import pytest
from flax import nnx

from medjax.models.config import ModelConfig
from medjax.models.decoder import DecoderLM
from medjax.models.presets import preset
from medjax.train.config import train_section
from medjax.train.objectives import lm_objective
from medjax.train.optimizer import learning_rate_schedule, make_optimizer
from medjax.train.step import init_state, make_train_step


def _batch(b=4, t=16, vocab=64):
    rng = np.random.RandomState(0)
    tokens = rng.randint(0, vocab, (b, t + 1)).astype(np.int32)
    mask = (rng.rand(b, t) > 0.3).astype(np.float32)  # uneven token counts per micro-batch
    return {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": mask,
            "segment_ids": np.ones((b, t), np.int32), "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1))}


def test_gradient_accumulation_equals_one_big_batch():
    cfg = ModelConfig(vocab_size=64, **preset("test"))
    graphdef, params, frozen = nnx.split(DecoderLM(cfg, rngs=nnx.Rngs(0)), nnx.Param, ...)
    optimizer, schedule = make_optimizer(train_section(), 10)
    results = []
    for accum in (1, 2):
        step = jax.jit(make_train_step(graphdef, lm_objective, optimizer, schedule, grad_accum=accum))
        state, metrics = step(init_state(params, optimizer, 0), frozen, _batch(), {})
        results.append((float(metrics["loss"]), float(metrics["grad_norm"]), state["params"]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-4)
    for a, b in zip(jax.tree.leaves(results[0][2]), jax.tree.leaves(results[1][2])):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_schedules_warm_up_then_decay():  # the weight-decay mask: tests/test_weight_decay.py
    t = train_section()
    t.lr, t.warmup_steps, t.min_lr_ratio = 1.0, 10, 0.1
    for kind in ("cosine", "linear"):
        t.schedule = kind
        lr = learning_rate_schedule(t, 100)
        assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1.0)
        assert float(lr(99)) == pytest.approx(0.1, abs=0.02) and float(lr(50)) < 1.0
