"""Named held-out sets (`data.eval` as {name: source}) and general-domain replay (configs/cp_ift_replay.py):
each set is logged as eval_loss/<name>, and replaying general text keeps the general eval loss lower."""
import json
import os

import jax
import numpy as np
import pytest

from medjax.assets import default_paths
from medjax.assets.build_general_data import build, general_paths
from medjax.data.config import data_config
from medjax.data.eval_sources import SINGLE, build_eval_sets, flatten, named_eval_sources, regroup
from medjax.data.records import DataError
from medjax.data.tokenizer import load_tokenizer
from medjax.train.evaluation import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS, GENERAL = default_paths(), general_paths()
# the replay config on the test preset: one compile shared by both runs (the same shapes)
TINY = {"stages": "cp", "model.preset": "test", "train.seq_len": 64, "train.batch_size": 8, "cp.steps": 20,
        "cp.lr": 1e-2, "train.log_every": 5, "train.eval_every": 20, "train.eval_batches": 2,
        "train.warmup_steps": 2, "export_hf": False, "eval.tasks": "", "checkpoint.async_save": False,
        "checkpoint.every": 100}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(PATHS["tokenizer"])


# -- data.eval forms ----------------------------------------------------------------------------

def test_one_source_stays_one_set_and_a_dict_or_string_names_several():
    assert named_eval_sources(None) is None and named_eval_sources(PATHS["cp_eval"]) is None
    assert named_eval_sources([{"path": PATHS["cp_eval"]}]) is None
    as_dict = named_eval_sources({"medical": PATHS["cp_eval"], "general": {"path": GENERAL["general_eval"]}})
    assert as_dict == {"medical": PATHS["cp_eval"], "general": [{"path": GENERAL["general_eval"]}]}
    # the command-line form: --config.cp.data.eval=medical=PATH,general=PATH
    as_string = named_eval_sources(f"medical={PATHS['cp_eval']}, general={GENERAL['general_eval']}")
    assert as_string == {"medical": PATHS["cp_eval"], "general": GENERAL["general_eval"]}


@pytest.mark.parametrize("spec, message", [
    ("medical=a.txt,general", "name=path pairs"),
    ("medical=a.txt,medical=b.txt", "appears twice"),
    ({}, "names no held-out source"),
    ({"eval loss": "a.txt"}, "source name 'eval loss'"),
    ({"general": None}, "config.cp.data.eval.general is not set"),
    ({"general": {"path": "a.txt", "wieght": 1}}, "config.cp.data.eval.general[0] has unknown keys ['wieght']"),
])
def test_bad_named_sources_fail_naming_the_key(spec, message):
    with pytest.raises(DataError, match="config.cp.data.eval") as e:
        named_eval_sources(spec, "config.cp.data.eval")
    assert message in str(e.value)


def test_each_named_source_gets_its_own_batches(tokenizer, tmp_path):
    kwargs = dict(kind="lm", seq_len=64, batch_size=4)
    named = data_config(train=PATHS["cp_train"],
                        eval={"medical": PATHS["cp_eval"], "general": GENERAL["general_eval"]})
    sets = build_eval_sets(named, tokenizer, 3, **kwargs)
    assert list(sets) == ["medical", "general"] and all(len(b) == 3 for b in sets.values())
    medical_only = build_eval_sets(data_config(train=PATHS["cp_train"], eval=PATHS["cp_eval"]), tokenizer, 3, **kwargs)
    assert list(medical_only) == [SINGLE]
    np.testing.assert_array_equal(sets["medical"][0]["tokens"], medical_only[SINGLE][0]["tokens"])
    assert not np.array_equal(sets["general"][0]["tokens"], sets["medical"][0]["tokens"])
    missing = data_config(train=PATHS["cp_train"],
                          eval={"medical": PATHS["cp_eval"], "general": str(tmp_path / "no.txt")})
    with pytest.raises(DataError, match=r"^data.eval.general: data path .*no.txt' does not exist"):
        build_eval_sets(missing, tokenizer, 3, **kwargs)


def test_evaluate_reports_each_set_and_the_overall_loss_over_all_their_tokens():
    """The loss of a batch is its first token; the weight is the batch's row count."""
    from medjax.parallel.mesh import make_mesh

    mesh = make_mesh(devices=jax.devices()[:1])

    def eval_step(params, frozen, batch, extras):
        weight = batch["tokens"].shape[0]
        return {"loss": batch["tokens"][0, 0] * weight}, weight

    batch = lambda value, rows: {"tokens": np.full((rows, 2), value, np.float32)}  # noqa: E731
    sets = {"medical": [batch(2.0, 1), batch(4.0, 1)], "general": [batch(6.0, 2)]}
    out = evaluate(eval_step, None, None, sets, {}, mesh)
    assert out == pytest.approx({"eval_loss": (2 + 4 + 12) / 4, "eval_loss/medical": 3.0, "eval_loss/general": 6.0})
    # one held-out source: today's name alone, whether given as {SINGLE: batches} or as a list
    assert evaluate(eval_step, None, None, {SINGLE: sets["medical"]}, {}, mesh) == {"eval_loss": 3.0}
    assert evaluate(eval_step, None, None, sets["medical"], {}, mesh) == {"eval_loss": 3.0}
    # a preference stage's precomputed reference pass sees one flat list; its batches go back to their sets
    assert regroup(sets, [b["tokens"][0, 0] for b in flatten(sets)]) == {"medical": [2.0, 4.0], "general": [6.0]}


def test_committed_general_text_is_a_fresh_build_and_small(tmp_path):
    build(str(tmp_path))
    for path in GENERAL.values():
        fresh = (tmp_path / os.path.basename(path)).read_text(encoding="utf-8")
        with open(path, encoding="utf-8") as committed:
            assert committed.read() == fresh, f"{path}: run python -m medjax.assets.build_general_data"
    assert sum(os.path.getsize(p) for p in GENERAL.values()) < 200_000


# -- the replay config: two short CP runs, with and without general replay -------------------------

def _run_replay_config(workdir: str, **overrides):
    from medjax.parallel.mesh import make_mesh
    from medjax.train.config import load_config_file
    from medjax.train.stage import run_stage

    c = load_config_file(os.path.join(ROOT, "configs", "cp_ift_replay.py"))
    for key, value in {**TINY, **overrides}.items():
        section, _, leaf = key.rpartition(".")
        (c[section] if section else c)[leaf] = value
    result = run_stage(c, "cp", workdir, make_mesh(devices=jax.devices()[:1]))
    with open(os.path.join(workdir, "cp", "metrics.jsonl")) as f:
        evals = {r["step"]: r for r in map(json.loads, f) if "eval_loss" in r}
    return result, evals


@pytest.fixture(scope="module")
def replay_runs(tmp_path_factory):
    replay = _run_replay_config(str(tmp_path_factory.mktemp("replay")))
    plain = _run_replay_config(str(tmp_path_factory.mktemp("plain")), **{"cp.data.train": PATHS["cp_train"]})
    return {"replay": replay, "plain": plain}


def test_a_stage_with_two_named_eval_sources_logs_both(replay_runs):
    result, evals = replay_runs["replay"]
    assert sorted(evals) == [0, 20]
    for record in evals.values():
        medical, general, overall = record["eval_loss/medical"], record["eval_loss/general"], record["eval_loss"]
        assert medical != general and min(medical, general) <= overall <= max(medical, general)
    plain = replay_runs["plain"][1][20]  # trained on medical text alone: the two sets far apart
    assert plain["eval_loss/general"] - plain["eval_loss/medical"] > 0.1, plain
    # summary.json's eval figures: every logged key; first/last eval loss over both sets' tokens
    assert result.eval_metrics == {k: v for k, v in evals[20].items() if k != "step"}
    assert result.first_eval_loss == evals[0]["eval_loss"] and result.last_eval_loss == evals[20]["eval_loss"]


def test_general_replay_keeps_the_general_eval_loss_lower(replay_runs):
    """Measured (test preset, 20 steps of 8x64 tokens, from 7.63): general 6.36 with 10% replay, 6.54 without;
    medical 6.31 and 6.32. Full length figures: configs/cp_ift_replay.py."""
    replay, plain = replay_runs["replay"][1][20], replay_runs["plain"][1][20]
    assert replay["eval_loss/general"] < plain["eval_loss/general"] - 0.1, (replay, plain)
    assert replay_runs["replay"][0].token_counts["general"] > 0
    assert "general" not in replay_runs["plain"][0].token_counts


def test_the_report_draws_each_named_eval_curve(replay_runs, monkeypatch):
    from medjax.train import report_plots
    from medjax.train.run_record import read_run

    labels, close = [], report_plots.plt.close

    def close_recording_labels(fig):
        labels.extend(fig.axes[0].get_legend_handles_labels()[1])
        close(fig)

    monkeypatch.setattr(report_plots.plt, "close", close_recording_labels)
    workdir = os.path.dirname(replay_runs["replay"][0].stage_dir)
    assert report_plots.plot_losses(read_run(workdir), os.path.join(workdir, "losses.png"))
    assert {"cp eval loss", "cp eval loss/medical", "cp eval loss/general"} <= set(labels)
