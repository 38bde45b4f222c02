"""Mixtures: HuatuoGPT-II priority sampling, epochs, replay, and exact resume of the iterator."""
import json

import numpy as np
import pytest

from medjax.data.config import data_config
from medjax.data.mixture import MixtureSampler, SourceSpec
from medjax.data.pipeline import build_train_iterator
from test_data_fixtures import llama2_tokenizer  # noqa: F401  (fixture)


def _expected_share_of_first_source(n_a, n_b, p_a, p_b, steps):
    """Exact expected number of draws from source A in the first `steps` draws when a draw picks a
    source with probability priority x remaining (dynamic programming over drawn counts)."""
    dist = {(0, 0): 1.0}
    expected = 0.0
    for _ in range(steps):
        nxt = {}
        for (a, b), prob in dist.items():
            wa, wb = p_a * (n_a - a), p_b * (n_b - b)
            pa = wa / (wa + wb)
            expected += prob * pa
            nxt[(a + 1, b)] = nxt.get((a + 1, b), 0.0) + prob * pa
            nxt[(a, b + 1)] = nxt.get((a, b + 1), 0.0) + prob * (1 - pa)
        dist = nxt
    return expected


def test_priority_sampling_matches_the_algorithm_and_drains_high_priority_first():
    specs = [SourceSpec("web", "w", priority=8), SourceSpec("sft", "s", priority=1)]
    steps, seeds = 20, 400
    first = np.zeros(seeds)
    drain_step = {"web": [], "sft": []}
    for seed in range(seeds):
        sampler = MixtureSampler(specs, [20, 20], seed)
        draws = [sampler.next()[0] for _ in range(40)]
        first[seed] = draws[:steps].count(0)
        drain_step["web"].append(max(i for i, s in enumerate(draws) if s == 0))
        drain_step["sft"].append(max(i for i, s in enumerate(draws) if s == 1))
        assert sorted(draws) == [0] * 20 + [1] * 20, "a pass delivers every record once"
    expected = _expected_share_of_first_source(20, 20, 8, 1, steps)
    assert abs(first.mean() - expected) < 4 * first.std() / np.sqrt(seeds) + 0.05
    assert np.mean(drain_step["web"]) < np.mean(drain_step["sft"])


def test_epochs_repeat_records_within_a_pass_and_passes_reshuffle():
    specs = [SourceSpec("a", "a", priority=4), SourceSpec("sft", "s", priority=1, epochs=3)]
    sampler = MixtureSampler(specs, [5, 4], seed=1)
    draws = [sampler.next() for _ in range(5 + 12)]
    assert sorted(r for s, r in draws if s == 1) == sorted(list(range(4)) * 3)
    assert sorted(r for s, r in draws if s == 0) == list(range(5))
    assert sampler.get_state()["pass"] == 0
    sampler.next()
    assert sampler.get_state()["pass"] == 1


def test_replay_source_supplies_its_fraction_of_draws():
    specs = [SourceSpec("medical", "m"), SourceSpec("general", "g", replay=0.25)]
    sampler = MixtureSampler(specs, [50, 10], seed=0)
    draws = [sampler.next()[0] for _ in range(4000)]
    assert abs(draws.count(1) / 4000 - 0.25) < 0.03


def test_weighted_sources_follow_their_weights():
    specs = [SourceSpec("a", "a", weight=3.0), SourceSpec("b", "b", weight=1.0)]
    sampler = MixtureSampler(specs, [10_000, 10_000], seed=0)
    draws = [sampler.next()[0] for _ in range(4000)]
    assert abs(draws.count(0) / 4000 - 0.75) < 0.03


def _write_mixture(tmp_path):
    long_text = " ".join(f"word{i}" for i in range(200))  # longer than a row: split into pieces
    (tmp_path / "web.txt").write_text("\n\n".join([long_text] + [f"web page {i} about fever" for i in range(30)]))
    (tmp_path / "books.jsonl").write_text("".join(
        json.dumps({"text": f"book chapter {i} on anatomy " * (1 + i % 4)}) + "\n" for i in range(20)))
    return [{"name": "web", "path": str(tmp_path / "web.txt"), "priority": 32},
            {"name": "books", "path": str(tmp_path / "books.jsonl"), "priority": 4, "epochs": 2}]


@pytest.mark.parametrize("kind", ["lm"])
def test_resumed_iterator_continues_exactly(tmp_path, llama2_tokenizer, kind):
    cfg = data_config(train=_write_mixture(tmp_path), pack_buffer=8)
    make = lambda: build_train_iterator(cfg, llama2_tokenizer, kind=kind, seq_len=48, batch_size=3, seed=7)
    uninterrupted = make()
    reference = [next(uninterrupted) for _ in range(12)]
    first = make()
    for _ in range(5):
        next(first)
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
    assert state["queue"] or state["buffer"], "the test should resume mid-pack"
    resumed = make()
    resumed.set_state(state)
    for expected in reference[5:]:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert resumed.token_counts() == uninterrupted.token_counts()
    assert resumed.stats() == uninterrupted.stats()


def test_token_counts_add_up_and_high_priority_drains_first(tmp_path, llama2_tokenizer):
    cfg = data_config(train=_write_mixture(tmp_path), eval_fraction=0.0)
    it = build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=48, batch_size=4, seed=0)
    batches = [next(it) for _ in range(10)]
    real = sum(int((b["segment_ids"] > 0).sum()) for b in batches)
    assert sum(it.token_counts().values()) == real == it.stats()["real_tokens"]
    assert set(it.token_counts()) == {"web", "books"}


def test_state_from_another_config_is_refused(tmp_path, llama2_tokenizer):
    sources = _write_mixture(tmp_path)
    it = build_train_iterator(data_config(train=sources), llama2_tokenizer, kind="lm", seq_len=48, batch_size=1)
    other = build_train_iterator(data_config(train=sources[:1]), llama2_tokenizer, kind="lm", seq_len=48,
                                 batch_size=1)
    with pytest.raises(Exception, match="state was saved for sources"):
        other.set_state(it.get_state())


def test_streaming_source_reads_in_order_wraps_and_resumes(tmp_path, llama2_tokenizer):
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps({"text": f"streamed record {i}"}) + "\n" for i in range(7)))
    sources = [{"name": "stream", "path": str(stream), "streaming": True},
               {"name": "general", "path": _write_mixture(tmp_path)[1]["path"], "replay": 0.3}]
    cfg = data_config(train=sources, pack_buffer=4)
    make = lambda: build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=32, batch_size=2, seed=1)
    it = make()
    reference = [next(it) for _ in range(10)]
    text = " ".join(llama2_tokenizer.decode(b["tokens"][r]) for b in reference for r in range(2))
    numbers = [int(w) for w in text.replace("streamed record", "\x00").split("\x00")[1:] for w in [w.split()[0]]]
    assert numbers[:7] == list(range(7)) and numbers[7:9] == [0, 1], "in order, then from the start again"
    first = make()
    for _ in range(4):
        next(first)
    resumed = make()
    resumed.set_state(json.loads(json.dumps(first.get_state())))
    for expected in reference[4:]:
        got = next(resumed)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_streaming_source_cannot_take_a_priority():
    from medjax.data.mixture import parse_sources
    from medjax.data.records import DataError

    with pytest.raises(DataError, match="streaming source has no known size"):
        parse_sources([{"path": "a.jsonl", "streaming": True, "priority": 2}])


def test_state_from_another_layout_is_refused(tmp_path, llama2_tokenizer):
    cfg = data_config(train=_write_mixture(tmp_path))
    state = build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=48, batch_size=1).get_state()
    other = build_train_iterator(cfg, llama2_tokenizer, kind="lm", seq_len=64, batch_size=1)
    with pytest.raises(Exception, match="saved with seq_len=48, this run has 64"):
        other.set_state(state)
