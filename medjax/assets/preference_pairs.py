"""Preference pairs: one question, a chosen answer that states the knowledge-base fact and a
rejected answer in the same words that states a distractor's fact instead.

Chosen and rejected differ only in the fact, so the preference is about being right, not about
style or length. Distractors come from `distractors.pick_distractors` (never secretly right).
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import Condition
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import capitalize, join_phrases, shuffled_symptoms


def render_pref(conditions, rng: random.Random) -> list[dict]:
    pairs = []
    for c in conditions:
        pairs.append(treatment_pair(c, conditions, rng))
        if not c.is_clinical_diagnosis:
            pairs.append(test_pair(c, conditions, rng))
        pairs.append(diagnosis_pair(c, conditions, rng))
    return pairs


def treatment_pair(c: Condition, conditions, rng: random.Random) -> dict:
    wrong = pick_distractors(c, conditions, "treatment", 1, rng, same_system=False)[0]
    question = rng.choice([f"What is the first-line treatment for {c.name}?",
                           f"A patient has just been diagnosed with {c.name}. "
                           "What treatment should be started first?"])
    answer = "The first-line treatment for {} is {}."
    return _pair(question, answer.format(c.name, c.treatment), answer.format(c.name, wrong.treatment))


def test_pair(c: Condition, conditions, rng: random.Random) -> dict:
    wrong = pick_distractors(c, conditions, "test", 1, rng, same_system=False)[0]
    question = rng.choice([f"Which test best confirms {c.name}?",
                           f"What is the key investigation for suspected {c.name}?"])
    answer = "The key test for {} is {}."
    return _pair(question, answer.format(c.name, c.test), answer.format(c.name, wrong.test))


def diagnosis_pair(c: Condition, conditions, rng: random.Random) -> dict:
    patient = draw_patient(c, rng)
    wrong = pick_distractors(c, conditions, "name", 1, rng, same_system=True, sex=patient.sex)[0]
    question = (f"{capitalize(patient.description)} is seen with "
                f"{join_phrases(shuffled_symptoms(c, rng))}. Which condition is most likely?")
    answer = "The most likely condition is {}."
    return _pair(question, answer.format(c.name), answer.format(wrong.name))


def _pair(question: str, chosen: str, rejected: str) -> dict:
    return {"conversations": [{"from": "human", "value": question}],
            "chosen": chosen, "rejected": rejected}


def render_pref_eval(conditions, train_pairs: list[dict], n: int, rng: random.Random) -> list[dict]:
    """Held-out pairs: a treatment question whose right answer training preferred, against a wrong
    answer it never saw for that question. Held-out accuracy then measures whether "prefer the right
    fact" generalises to new distractors; pairs about facts training never preferred would instead
    measure how often a held-out distractor was some other question's chosen answer."""
    trained_wrong = {p["chosen"]: p["rejected"] for p in train_pairs}
    pairs = []
    for c in rng.sample(list(conditions), len(conditions)):
        answer = f"The first-line treatment for {c.name} is {{}}."
        if answer.format(c.treatment) not in trained_wrong:
            continue
        for wrong in pick_distractors(c, conditions, "treatment", 3, rng, same_system=False):
            if answer.format(wrong.treatment) != trained_wrong[answer.format(c.treatment)]:
                question = f"What is the first-line treatment for {c.name}?"
                pairs.append(_pair(question, answer.format(c.treatment), answer.format(wrong.treatment)))
                break
        if len(pairs) == n:
            break
    return pairs
