"""GLM blank infilling: the transform keeps every token recoverable, and a packed CP batch of
corrupted documents trains through the shared `lm` objective with documents kept apart."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings, strategies as st

from medjax.data.glm_blank_infilling import BlankTokens, blank_infilling
from medjax.models import glm_v1
from medjax.train.objectives import lm_objective

TOKENS = BlankTokens(mask=50, gmask=51, sop=54, eop=55)
CONFIG = {"model_type": "chatglm", "vocab_size": 64, "hidden_size": 32, "num_layers": 2, "num_attention_heads": 4,
          "inner_hidden_size": 48, "max_sequence_length": 64, "bos_token_id": 54, "eos_token_id": 55,
          "mask_token_id": 50, "gmask_token_id": 51}


def _refill(sample) -> list[int]:
    """Rebuilds the document: each blank of Part A takes the next span of Part B."""
    toks, loss = sample["tokens"].tolist(), sample["loss_mask"]
    n_a = int((loss == 0).sum())
    part_a, targets_b = toks[:n_a], sample["targets"][n_a:].tolist()
    spans, current = [], []
    for t in targets_b:
        if t == TOKENS.eop:
            spans.append(current)
            current = []
        else:
            current.append(t)
    out, k = [], 0
    for t in part_a:
        if t in (TOKENS.mask, TOKENS.gmask):
            out += spans[k]
            k += 1
        else:
            out.append(t)
    assert k == len(spans)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.sampled_from(["spans", "gmask"]),
       st.integers(0, 2**31 - 1))
def test_every_token_is_recoverable(doc, mode, seed):
    sample = blank_infilling(doc, np.random.default_rng(seed), TOKENS, mode=mode)
    assert _refill(sample) == doc
    n_spans = int((sample["tokens"] == TOKENS.sop).sum())
    assert len(sample["tokens"]) == len(doc) + 2 * n_spans
    n_a = int((sample["loss_mask"] == 0).sum())
    assert sample["loss_mask"][:n_a].sum() == 0 and sample["tokens"][n_a] == TOKENS.sop  # Part A, then Part B
    masked = len(doc) - (n_a - n_spans)  # each span left one blank in Part A
    assert sample["loss_mask"].sum() == masked + n_spans  # every span token and each <eop> is predicted


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="mode"):
        blank_infilling([1, 2, 3], np.random.default_rng(0), TOKENS, mode="prefix")


def _packed_setup():
    cfg = glm_v1.config_from_hf(CONFIG)
    model = glm_v1.build(cfg, nnx.Rngs(0))
    rng = np.random.default_rng(1)
    docs = [blank_infilling(rng.integers(1, 40, size=n), rng, TOKENS, mode=m) for n, m in ((14, "spans"), (9, "gmask"))]
    length = sum(len(d["tokens"]) for d in docs)

    def batch_of(samples):  # padded to one length (segment 0), so everything compiles once
        row = {k: np.concatenate([s[k] for s in samples]) for k in ("tokens", "targets", "loss_mask")}
        row["segment_ids"] = np.concatenate([np.full(len(s["tokens"]), i + 1, np.int32)
                                             for i, s in enumerate(samples)])
        row["positions"] = np.concatenate([np.arange(len(s["tokens"]), dtype=np.int32) for s in samples])
        pad = length - len(row["tokens"])
        return {k: jnp.asarray(np.pad(v, (0, pad))[None]) for k, v in row.items()}

    graphdef, params = nnx.split(model, nnx.Param)
    loss_fn = jax.jit(lambda p, batch: lm_objective(nnx.merge(graphdef, p), batch, {})[:2])
    return docs, batch_of, params, loss_fn


def test_packed_cp_batch_keeps_documents_apart():
    docs, batch_of, params, loss_fn = _packed_setup()
    packed_loss, count = loss_fn(params, batch_of(docs))
    alone = [loss_fn(params, batch_of([d])) for d in docs]
    expected = sum(loss * c for loss, c in alone) / sum(c for _, c in alone)
    assert count == sum(c for _, c in alone)
    np.testing.assert_allclose(packed_loss, expected, rtol=1e-5)


@pytest.mark.slow
def test_packed_cp_batch_has_finite_gradients():
    docs, batch_of, params, loss_fn = _packed_setup()
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, batch_of(docs))[0]))(params)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and sum(norms) > 0
