"""Checks shared by the PEFT tests: a few real train steps, and packed documents seen as if alone."""

import jax
import numpy as np
from flax import nnx

from medjax.train.config import train_section
from medjax.train.objectives import lm_objective
from medjax.train.optimizer import make_optimizer
from medjax.train.step import init_state, make_train_step


def train_steps(model, trainable, batch, steps, lr=1e-2):
    """Runs `steps` jitted train steps on one batch (no warm-up, no decay): (state, frozen, losses)."""
    t = train_section()
    t.lr, t.warmup_steps, t.weight_decay = lr, 0, 0.0
    graphdef, params, frozen = nnx.split(model, trainable, ...)
    optimizer, schedule = make_optimizer(t, steps)
    state = init_state(params, optimizer, 0)
    step = jax.jit(make_train_step(graphdef, lm_objective, optimizer, schedule))
    losses = []
    for _ in range(steps):
        state, metrics = step(state, frozen, batch, {})
        losses.append(float(metrics["loss"]))
    return state, frozen, losses


def assert_packed_documents_as_if_alone(logits_of, docs, length=16):
    """`logits_of(tokens, segments)` on docs packed in one row equals each doc run alone, and the later
    docs' logits stay put when the first half of the first doc changes (keep special tokens out of it)."""
    packed = np.zeros((1, length), np.int32)
    packed[0, :sum(map(len, docs))] = np.concatenate(docs)
    segments = np.zeros((1, length), np.int32)
    starts = np.cumsum([0] + [len(d) for d in docs])
    for i, (start, end) in enumerate(zip(starts[:-1], starts[1:])):
        segments[0, start:end] = i + 1
    out = logits_of(packed, segments)
    for doc, start, end in zip(docs, starts[:-1], starts[1:]):
        row = np.zeros((1, length), np.int32)
        row[0, :len(doc)] = doc
        alone = logits_of(row, (np.arange(length) < len(doc))[None].astype(np.int32))
        np.testing.assert_allclose(out[0, start:end], alone[0, :len(doc)], atol=1e-5)
    changed = packed.copy()
    half = max(1, len(docs[0]) // 2)
    changed[0, :half] = (changed[0, :half] + 1) % 3 + 10  # other ordinary tokens
    other = logits_of(changed, segments)
    np.testing.assert_array_equal(other[0, starts[1]:starts[-1]], out[0, starts[1]:starts[-1]])
    assert np.abs(other[0, :starts[1]] - out[0, :starts[1]]).max() > 1e-3
