"""Packed documents are isolated in the real model: changing one document of a row leaves the
logits of every other document unchanged (segment ids + per-document positions from the packer)."""
import functools

import numpy as np
from hypothesis import given, settings, strategies as st

from medjax.data.encode import Document
from medjax.data.packing import row_from_documents, stack_rows

SEQ_LEN, VOCAB = 32, 64


@functools.lru_cache(maxsize=None)
def _forward():
    import jax
    from flax import nnx

    from medjax.models.config import ModelConfig
    from medjax.models.llama import build

    cfg = ModelConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                      num_kv_heads=2, max_position_embeddings=64)
    graphdef, state = nnx.split(build(cfg, nnx.Rngs(0)))
    forward = jax.jit(lambda tokens, positions, segments: nnx.merge(graphdef, state)(tokens, positions, segments))
    return lambda batch: np.asarray(forward(batch["tokens"], batch["positions"], batch["segment_ids"]))


def _doc(ids):
    return Document(np.asarray(ids, np.int32), np.ones(len(ids), bool))


token_lists = st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=10)


@settings(max_examples=12, deadline=None)
@given(st.lists(token_lists, min_size=2, max_size=3), st.data())
def test_changing_one_document_leaves_the_others_logits_unchanged(docs, data):
    changed = data.draw(st.integers(0, len(docs) - 1))
    replacement = data.draw(token_lists.filter(lambda t: t != docs[changed]))
    variant = list(docs)
    variant[changed] = replacement
    logits = []
    for version in (docs, variant):
        batch = stack_rows([row_from_documents([_doc(d) for d in version], SEQ_LEN, pad_id=0)])
        logits.append((_forward()(batch)[0], batch["segment_ids"][0]))
    (a, seg_a), (b, seg_b) = logits
    for s in range(1, len(docs) + 1):
        if s - 1 == changed:
            continue
        np.testing.assert_allclose(a[seg_a == s], b[seg_b == s], atol=1e-5, rtol=1e-5)
