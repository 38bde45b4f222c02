"""Instruction-tuning records in ShareGPT format, rendered from the knowledge base.

Every condition gets six single-turn questions (definition, symptoms, test, treatment, a short
case vignette and a four-option multiple-choice question); a share of conditions also gets a
two-turn dialogue, and a share of all records opens with a system turn, so templates that
handle system prompts are exercised.
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import BODY_SYSTEMS, Condition
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import (capitalize, definition_sentence, join_phrases,
                                    shuffled_symptoms, symptoms_sentence, system_sentence,
                                    test_sentence, treatment_sentence)

SYSTEM_PROMPTS = (
    "You are a careful medical assistant. Answer briefly and accurately.",
    "You are a helpful doctor explaining medicine in plain English.",
)
MULTI_TURN_SHARE = 0.3
SYSTEM_TURN_SHARE = 0.15


def render_sft(conditions, rng: random.Random) -> list[dict]:
    records = []
    for c in conditions:
        turns = [definition_qa(c, rng), symptoms_qa(c, rng), test_qa(c, rng),
                 treatment_qa(c, rng), vignette_qa(c, rng), multiple_choice_qa(c, conditions, rng)]
        records.extend([qa] for qa in turns)
        if rng.random() < MULTI_TURN_SHARE:
            records.append([definition_qa(c, rng), _follow_up(c, rng)])
    return [_sharegpt(dialogue, rng) for dialogue in records]


def definition_qa(c: Condition, rng: random.Random) -> tuple[str, str]:
    question = rng.choice([f"What is {c.name}?", f"Can you explain what {c.name} is?",
                           f"Define {c.name}.", f"Tell me briefly about {c.name}."])
    return question, f"{definition_sentence(c, rng)} {system_sentence(c, rng)}"


def symptoms_qa(c: Condition, rng: random.Random) -> tuple[str, str]:
    question = rng.choice([f"What are the typical symptoms of {c.name}?",
                           f"How does {c.name} usually present?",
                           f"Which symptoms suggest {c.name}?"])
    return question, symptoms_sentence(c, rng)


def test_qa(c: Condition, rng: random.Random) -> tuple[str, str]:
    question = rng.choice([f"How is {c.name} diagnosed?",
                           f"Which test confirms {c.name}?",
                           f"What investigation should be done for suspected {c.name}?"])
    return question, test_sentence(c, rng)


def treatment_qa(c: Condition, rng: random.Random) -> tuple[str, str]:
    question = rng.choice([f"What is the first-line treatment for {c.name}?",
                           f"How is {c.name} treated?",
                           f"What treatment is usually started for {c.name}?"])
    return question, treatment_sentence(c, rng)


def vignette_qa(c: Condition, rng: random.Random) -> tuple[str, str]:
    patient = draw_patient(c, rng)
    findings = join_phrases(shuffled_symptoms(c, rng))
    question = rng.choice([
        f"{capitalize(patient.description)} has {findings}. What is the most likely diagnosis?",
        f"My patient is {patient.description} with {findings}. What do you suspect?",
    ])
    answer = (f"The most likely diagnosis is {c.name}, {c.definition}. "
              f"{test_sentence(c, rng)}")
    return question, answer


def multiple_choice_qa(c: Condition, conditions, rng: random.Random) -> tuple[str, str]:
    """Asks for the treatment (or, for half of the conditions with a key test, the test)
    among three clearly wrong options from other body systems."""
    field = "test" if not c.is_clinical_diagnosis and rng.random() < 0.5 else "treatment"
    wrong = pick_distractors(c, conditions, field, 3, rng, same_system=False)
    options = [getattr(c, field), *(getattr(w, field) for w in wrong)]
    rng.shuffle(options)
    letters = "ABCD"
    right = letters[options.index(getattr(c, field))]
    ask = (f"Which of the following is the key test for {c.name}?" if field == "test"
           else f"Which of the following is the first-line treatment for {c.name}?")
    listed = "\n".join(f"{letter}. {capitalize(text)}" for letter, text in zip(letters, options))
    return f"{ask}\n{listed}", f"{right}. {capitalize(getattr(c, field))}"


def _follow_up(c: Condition, rng: random.Random) -> tuple[str, str]:
    question = rng.choice(["And how is it treated?", "What is the first treatment for it?",
                           "Which body system does it belong to?"])
    if question.startswith("Which"):
        return question, f"{capitalize(c.name)} is a condition of {BODY_SYSTEMS[c.system]}."
    return question, treatment_sentence(c, rng)


def _sharegpt(dialogue, rng: random.Random) -> dict:
    turns = []
    if rng.random() < SYSTEM_TURN_SHARE:
        turns.append({"from": "system", "value": rng.choice(SYSTEM_PROMPTS)})
    for question, answer in dialogue:
        turns.append({"from": "human", "value": question})
        turns.append({"from": "gpt", "value": answer})
    return {"conversations": turns}
