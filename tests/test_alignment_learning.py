"""Learning: held-out preference accuracy rises from chance to above 0.9 on a checkable task.

The task: "What is the first-line treatment for X?" with the knowledge base's treatment for X as
the chosen answer and another condition's treatment as the rejected one. Pairs follow a cyclic
design (condition i against condition i+k): shifts 1..6 train, shifts 7..9 are held out, so every
answer is chosen as often as it is rejected in both splits and only learning which treatment goes
with which condition lifts the held-out accuracy.
"""
import json

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


def held_out_accuracy(tmp_path, loss: str, beta: float, lora: bool, steps: int, lr: float) -> tuple[float, float]:
    train, held_out = write_treatment_pairs(tmp_path)
    c = tiny_ha("copy", lora=lora, steps=steps)
    c.data.train, c.data.eval = train, held_out
    c.train.update(lr=lr, batch_size=8, eval_batches=8, warmup_steps=3, log_every=10)
    c.ha.loss, c.ha.beta = loss, beta
    if lora:
        c.peft.update(rank=16, alpha=32.0, targets="all")
    run(c, str(tmp_path / "run"))
    evals = [r["eval_pref_accuracy"] for r in metrics(str(tmp_path / "run")) if "eval_pref_accuracy" in r]
    return evals[0], evals[-1]


def test_dpo_full_parameters_learns_the_held_out_preferences(tmp_path):
    first, last = held_out_accuracy(tmp_path, "dpo", 0.2, lora=False, steps=100, lr=1e-2)
    assert first == pytest.approx(0.5)  # policy == reference: every reward is 0, a tie counts half
    assert last > 0.9, last


@pytest.mark.slow
@pytest.mark.parametrize("loss, beta, lora, steps, lr", [
    ("orpo", 0.5, False, 100, 1e-2),
    ("dpo", 0.2, True, 300, 3e-2),
    ("orpo", 0.5, True, 300, 3e-2),
])
def test_preferences_are_learned(tmp_path, loss, beta, lora, steps, lr):
    first, last = held_out_accuracy(tmp_path, loss, beta, lora, steps, lr)
    assert 0.3 <= first <= 0.7
    assert last > 0.9, (loss, lora, first, last)
