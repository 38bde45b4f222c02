"""English sentences about one condition, each in several wordings.

All renderers share this sentence bank so a fact reads the same way wherever it appears, while
the random choice of wording (from the caller's seeded `random.Random`) keeps the text varied
enough that a model has to learn the facts rather than one template.
"""
from __future__ import annotations

import random

from medjax.assets.knowledge import BODY_SYSTEMS, Condition


def capitalize(text: str) -> str:
    """Upper-cases the first letter only ("pH" or "HbA1c" inside the text stay as they are)."""
    return text[:1].upper() + text[1:]


def join_phrases(items) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def shuffled_symptoms(c: Condition, rng: random.Random) -> list[str]:
    symptoms = list(c.symptoms)
    rng.shuffle(symptoms)
    return symptoms


def definition_sentence(c: Condition, rng: random.Random) -> str:
    return rng.choice([
        f"{capitalize(c.name)} is {c.definition}.",
        f"The term {c.name} describes {c.definition}.",
        f"{capitalize(c.name)} can be defined as {c.definition}.",
    ])


def system_sentence(c: Condition, rng: random.Random) -> str:
    where = BODY_SYSTEMS[c.system]
    return rng.choice([
        f"It is a disorder of {where}.",
        f"It belongs to the conditions of {where}.",
        f"Doctors group it with the diseases of {where}.",
    ])


def symptoms_sentence(c: Condition, rng: random.Random) -> str:
    s = join_phrases(shuffled_symptoms(c, rng))
    return rng.choice([
        f"Typical symptoms of {c.name} are {s}.",
        f"People with {c.name} usually notice {s}.",
        f"The usual picture of {c.name} includes {s}.",
        f"Common complaints in {c.name} are {s}.",
    ])


def test_sentence(c: Condition, rng: random.Random) -> str:
    # `c.test` is either a procedure ("an echocardiogram") or a finding ("a low serum
    # ferritin"); every wording below reads correctly with both.
    if c.is_clinical_diagnosis:
        return rng.choice([
            f"{capitalize(c.name)} is usually a {c.test}.",
            f"No single test is needed for {c.name}: it is a {c.test}.",
            f"In most cases {c.name} is a {c.test}.",
        ])
    return rng.choice([
        f"The key test for {c.name} is {c.test}.",
        f"The diagnosis of {c.name} is confirmed by {c.test}.",
        f"A diagnosis of {c.name} rests on {c.test}.",
        f"Doctors confirm {c.name} with {c.test}.",
    ])


def treatment_sentence(c: Condition, rng: random.Random) -> str:
    return rng.choice([
        f"The first-line treatment for {c.name} is {c.treatment}.",
        f"{capitalize(c.name)} is first treated with {c.treatment}.",
        f"Treatment of {c.name} usually starts with {c.treatment}.",
        f"For {c.name}, the usual first treatment is {c.treatment}.",
    ])
