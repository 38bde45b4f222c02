"""Property tests of segment-aware packing on random documents."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from medjax.data.encode import Document, Pair
from medjax.data.packing import fit_to_length, pack_documents, row_from_pair, truncate_pair

SEQ_LEN = 16


def _doc(ids, trained):
    return Document(np.asarray(ids, np.int32), np.asarray(trained, bool))


documents = st.lists(
    st.integers(1, SEQ_LEN).flatmap(lambda n: st.tuples(
        st.lists(st.integers(3, 99), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n))),
    min_size=1, max_size=20).map(lambda docs: [_doc(i, t) for i, t in docs])


def _segments(row):
    """The documents of a row as (start, end) spans, in segment order."""
    seg = row["segment_ids"]
    spans = []
    for s in range(1, seg.max() + 1):
        where = np.flatnonzero(seg == s)
        assert len(where) and where[-1] - where[0] + 1 == len(where), "a segment must be contiguous"
        spans.append((where[0], where[-1] + 1))
    return spans


@settings(max_examples=60, deadline=None)
@given(documents, st.integers(1, 8))
def test_packing_conserves_tokens_restarts_positions_and_keeps_labels_inside(docs, buffer):
    rows = list(pack_documents(docs, SEQ_LEN, buffer_size=buffer, pad_id=0))
    seen = []
    for row in rows:
        assert all(len(v) == SEQ_LEN for v in row.values())
        padding = row["segment_ids"] == 0
        assert not row["loss_mask"][padding].any(), "padding carries no loss"
        assert (row["segment_ids"][np.argmax(padding):] == 0).all() if padding.any() else True
        for start, end in _segments(row):
            ids = row["tokens"][start:end]
            seen.append(tuple(ids))
            np.testing.assert_array_equal(row["positions"][start:end], np.arange(end - start))
            np.testing.assert_array_equal(row["targets"][start:end - 1], ids[1:])
            assert row["loss_mask"][end - 1] == 0, "no label crosses a document boundary"
    assert sorted(seen) == sorted(tuple(d.ids) for d in docs), "every token packed exactly once"
    # The loss mask reproduces each document's trained flags (shifted by one).
    by_ids = {}
    for d in docs:
        by_ids.setdefault(tuple(d.ids), []).append(tuple(d.trained[1:]))
    for row in rows:
        for start, end in _segments(row):
            mask = tuple(row["loss_mask"][start:end - 1].astype(bool))
            assert mask in by_ids[tuple(row["tokens"][start:end])]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.sampled_from(["right", "left", "split", "drop"]))
def test_truncation_policies(n, policy):
    doc = _doc(np.arange(n) + 3, [True] * n)
    pieces = fit_to_length(doc, SEQ_LEN, policy)
    assert all(0 < len(p) <= SEQ_LEN for p in pieces)
    if n <= SEQ_LEN:
        assert len(pieces) == 1 and len(pieces[0]) == n
    elif policy == "split":
        np.testing.assert_array_equal(np.concatenate([p.ids for p in pieces]), doc.ids)
    elif policy == "right":
        np.testing.assert_array_equal(pieces[0].ids, doc.ids[:SEQ_LEN])
    elif policy == "left":
        np.testing.assert_array_equal(pieces[0].ids, doc.ids[-SEQ_LEN:])
    else:
        assert pieces == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3, 99), min_size=1, max_size=40),
       st.lists(st.integers(3, 99), min_size=1, max_size=40),
       st.lists(st.integers(3, 99), min_size=1, max_size=40))
def test_preference_row_holds_one_pair_and_keeps_prompt_end(prompt, chosen, rejected):
    row = row_from_pair(Pair(prompt, chosen, rejected), 32, pad_id=0)
    kept = truncate_pair(Pair(prompt, chosen, rejected), 32)
    assert kept.prompt == prompt[len(prompt) - len(kept.prompt):], "keeps the END of the prompt"
    assert kept.chosen == chosen[:len(kept.chosen)] and kept.rejected == rejected[:len(kept.rejected)]
    assert kept.chosen and kept.rejected, "each response keeps some tokens"
    spans = _segments(row)
    assert len(spans) == 2
    for (start, end), response in zip(spans, (kept.chosen, kept.rejected)):
        ids = row["tokens"][start:end].tolist()
        assert ids == kept.prompt + response
        # loss exactly on the response tokens (as targets), not on the prompt, none at the end
        expected = [0.0] * max(len(kept.prompt) - 1, 0) + [1.0] * len(response)
        if not kept.prompt:
            expected = [1.0] * (len(response) - 1)
        assert row["loss_mask"][start:end - 1].tolist() == expected
        assert row["loss_mask"][end - 1] == 0


def test_a_document_longer_than_the_row_is_an_error_without_a_policy():
    with pytest.raises(ValueError, match="exceeds seq_len"):
        list(pack_documents([_doc(range(3, 30), [True] * 27)], SEQ_LEN))
