"""Continued-pretraining text: encyclopedic paragraphs rendered from the knowledge base.

Five kinds of document, one file each, so the corpus reads like a small medical library rather
than one template: encyclopedia entries, case notes, patient leaflets (questions and answers),
body-system overviews and comparisons of two conditions. Each document is one paragraph.
"""
from __future__ import annotations

import random

from medjax.assets.knowledge import BODY_SYSTEMS, Condition
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import (capitalize, definition_sentence, join_phrases,
                                    shuffled_symptoms, symptoms_sentence, system_sentence,
                                    test_sentence, treatment_sentence)


def render_corpus(conditions, rng: random.Random) -> dict[str, list[str]]:
    """File name -> documents (each a single paragraph with no newline)."""
    return {
        "encyclopedia.txt": [encyclopedia_entry(c, rng) for c in conditions for _ in range(2)],
        "case_notes.txt": [case_note(c, rng) for c in conditions for _ in range(2)],
        "patient_leaflets.txt": [patient_leaflet(c, rng) for c in conditions],
        "body_systems.txt": [doc for system in BODY_SYSTEMS
                             for doc in system_overviews(system, conditions, rng)],
        "comparisons.txt": [comparison(c, rng.choice(_neighbours(c, conditions)), rng)
                            for c in conditions],
    }


def encyclopedia_entry(c: Condition, rng: random.Random) -> str:
    middle = [symptoms_sentence(c, rng), test_sentence(c, rng)]
    rng.shuffle(middle)  # the treatment always closes the entry, as in a reference book
    return " ".join([definition_sentence(c, rng), system_sentence(c, rng), *middle,
                     treatment_sentence(c, rng)])


def case_note(c: Condition, rng: random.Random) -> str:
    patient = draw_patient(c, rng)
    he = capitalize(patient.pronoun)
    setting = rng.choice(["came to the clinic", "was seen in the emergency department",
                          "visited the family doctor", "was referred to the hospital"])
    findings = join_phrases(shuffled_symptoms(c, rng))
    if c.is_clinical_diagnosis:
        diagnosis = rng.choice([
            f"The doctor diagnosed {c.name}; this is a {c.test}.",
            f"{capitalize(c.name)} was diagnosed on clinical grounds.",
        ])
    else:
        diagnosis = rng.choice([
            f"The diagnosis of {c.name} was confirmed by {c.test}.",
            f"{he} was diagnosed with {c.name} on the basis of {c.test}.",
        ])
    treatment = rng.choice([
        f"{he} was treated with {c.treatment}.",
        f"Management began with {c.treatment}.",
        f"As the first-line treatment, {patient.pronoun} received {c.treatment}.",
    ])
    return f"Case note. {capitalize(patient.description)} {setting} with {findings}. " \
           f"{diagnosis} {treatment}"


def patient_leaflet(c: Condition, rng: random.Random) -> str:
    return " ".join([
        f"Questions and answers about {c.name}.",
        f"What is {c.name}? {definition_sentence(c, rng)}",
        f"Which part of the body does it affect? {system_sentence(c, rng)}",
        f"What are the signs? {symptoms_sentence(c, rng)}",
        f"How do doctors find it? {test_sentence(c, rng)}",
        f"How is it treated? {treatment_sentence(c, rng)}",
    ])


def system_overviews(system: str, conditions, rng: random.Random) -> list[str]:
    """Two overviews of one body system: how its conditions present, and how they are treated."""
    members = [c for c in conditions if c.system == system]
    rng.shuffle(members)
    where = BODY_SYSTEMS[system]
    names = join_phrases(c.name for c in members)
    presentations = " ".join(
        f"In {c.name}, the main complaints are {join_phrases(shuffled_symptoms(c, rng)[:2])}."
        for c in members)
    treatments = " ".join(f"{capitalize(c.name)} is treated first with {c.treatment}."
                          for c in members)
    return [
        f"Conditions of {where}. The {system} conditions in this overview are {names}. "
        f"{presentations}",
        f"Treating conditions of {where}. {treatments}",
    ]


def comparison(a: Condition, b: Condition, rng: random.Random) -> str:
    opening = rng.choice([
        f"{capitalize(a.name)} and {b.name} are both conditions of {BODY_SYSTEMS[a.system]}, "
        "but they are easy to tell apart.",
        f"How to tell {a.name} from {b.name}.",
    ])
    return " ".join([
        opening,
        f"{capitalize(a.name)} typically causes {join_phrases(shuffled_symptoms(a, rng))}, "
        f"whereas {b.name} causes {join_phrases(shuffled_symptoms(b, rng))}.",
        test_sentence(a, rng), test_sentence(b, rng),
        f"Treatment differs as well: {a.name} is treated with {a.treatment}, "
        f"while {b.name} is treated with {b.treatment}.",
    ])


def _neighbours(c: Condition, conditions) -> list[Condition]:
    return [o for o in conditions if o.system == c.system and o.name != c.name]
