"""Learning: held-out preference accuracy rises from chance to above 0.9 on a checkable task.

The task: "What is the first-line treatment for X?" with the knowledge base's treatment for X as
the chosen answer and another condition's treatment as the rejected one. Pairs follow a cyclic
design (condition i against condition i+k): shifts 1..6 train, shifts 7..9 are held out, so every
answer is chosen as often as it is rejected in both splits and only learning which treatment goes
with which condition lifts the held-out accuracy. Full-parameter runs start from scratch; LoRA
runs start from a short CP run on the embedded corpus (which does not pair these answers up).

The embedded pairs (medjax/assets/preference_pairs.py: safe against unsafe advice) are checked as
shipped: their held-out pairs ask about conditions, in answer wordings, that training never shows.
"""
import json

import numpy as np
import pytest

from medjax.assets.knowledge import CONDITIONS
from medjax.train.pipeline import run
from test_alignment_support import metrics, tiny_ha

NUM_CONDITIONS, TRAIN_SHIFTS = 10, 6


def write_treatment_pairs(directory) -> tuple[str, str]:
    answers = {}
    for c in CONDITIONS:  # short answers whose first words differ
        words = c.treatment.split()[:4]
        if len(answers) < NUM_CONDITIONS and all(a.split()[0] != words[0] for a in answers.values()):
            answers[c.name] = " ".join(words)
    names = list(answers)
    paths = []
    for split, shifts in (("train", range(1, TRAIN_SHIFTS + 1)), ("eval", range(TRAIN_SHIFTS + 1, NUM_CONDITIONS))):
        path = directory / f"{split}.jsonl"
        with open(path, "w") as f:
            for k in shifts:
                for i, name in enumerate(names):
                    wrong = names[(i + k) % NUM_CONDITIONS]
                    f.write(json.dumps({"conversations": [{"from": "human",
                                                           "value": f"What is the first-line treatment for {name}?"}],
                                        "chosen": answers[name] + ".", "rejected": answers[wrong] + ".",
                                        }) + "\n")
        paths.append(str(path))
    return paths[0], paths[1]


def held_out_accuracies(tmp_path, loss: str, beta: float, steps: int, lr: float, init: str | None = None,
                        lora: bool = False) -> list[float]:
    """eval_pref_accuracy at step 0, every 20 steps and at the end."""
    train, held_out = write_treatment_pairs(tmp_path)
    c = tiny_ha("copy", lora=lora, steps=steps)
    c.data.train, c.data.eval = train, held_out
    c.train.update(lr=lr, batch_size=8, eval_batches=8, warmup_steps=3, log_every=10, eval_every=20)
    c.ha.loss, c.ha.beta = loss, beta
    if init:
        c.model.init = init
    if lora:
        c.peft.update(rank=16, alpha=32.0, targets="all")
    run(c, str(tmp_path / "run"))
    return [r["eval_pref_accuracy"] for r in metrics(str(tmp_path / "run")) if "eval_pref_accuracy" in r]


def test_dpo_full_parameters_learns_the_held_out_preferences(tmp_path):
    # tokenizer-sensitive; with the default tokenizer of 2026-12-02, 150 steps end at 0.967 (lr 1e-2), 0.867
    # (1.5e-2), 0.933 (2e-2, from step 100 on); 100 steps reach 0.87-0.9 at best
    evals = held_out_accuracies(tmp_path, "dpo", 0.2, steps=150, lr=2e-2)
    assert evals[0] == pytest.approx(0.5)  # policy == reference: every reward is 0, a tie counts half
    assert evals[-1] > 0.9, evals


def test_the_embedded_preference_pairs_are_learned_for_unseen_conditions_and_wordings(tmp_path):
    c = tiny_ha("copy", steps=20)  # configs/ha.py with its default data: the embedded pairs
    c.train.update(lr=1e-2, batch_size=8, seq_len=128, eval_batches=8, warmup_steps=3, log_every=10, eval_every=10)
    run(c, str(tmp_path / "run"))
    evals = [r["eval_pref_accuracy"] for r in metrics(str(tmp_path / "run")) if "eval_pref_accuracy" in r]
    assert evals[0] == pytest.approx(0.5)
    assert evals[-1] >= 0.8, evals


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> str:
    """A short full-parameter CP run on the embedded corpus: LoRA needs a base whose (frozen, tied)
    embeddings are trained; a random one caps the logits the adapters can move."""
    from test_alignment_support import load_config

    workdir = tmp_path_factory.mktemp("cp")
    c = load_config("cp")
    c.model.preset = "test"
    c.export_hf = False
    c.train.update(steps=150, seq_len=64, batch_size=8, log_every=50, eval_every=0, eval_batches=1, lr=3e-3)
    c.checkpoint.update(every=150, async_save=False)
    run(c, str(workdir))
    return f"ckpt:{workdir}/cp"


@pytest.mark.slow
def test_orpo_full_parameters_learns_the_held_out_preferences(tmp_path):
    evals = held_out_accuracies(tmp_path, "orpo", 0.5, steps=100, lr=1e-2)
    assert 0.3 <= evals[0] <= 0.7
    assert np.mean(evals[-2:]) > 0.9, evals


@pytest.mark.slow
@pytest.mark.parametrize("loss, beta", [("dpo", 0.2), ("orpo", 0.5)])
def test_lora_learns_the_held_out_preferences(pretrained, tmp_path, loss, beta):
    evals = held_out_accuracies(tmp_path, loss, beta, steps=400, lr=1e-2, init=pretrained, lora=True)
    assert 0.3 <= evals[0] <= 0.7
    assert np.mean(evals[-2:]) > 0.9, evals  # the last two evaluations: one pair moves the accuracy by 0.033
