"""Instruction-tuning records in ShareGPT format, rendered from the knowledge base.

Every condition gets five single-turn questions (definition, symptoms, test, treatment and a short
case vignette) and multiple-choice questions (diagnosis, treatment, test); a share of conditions
also gets a two-turn dialogue, and a share of all records opens with a system turn, so templates
that handle system prompts are exercised.

The multiple-choice questions are written in the benchmark evaluation's own prompt shape (its
header, "Question: ", lettered options) and answered the way it scores them ("Answer: B"), so
instruction tuning teaches the task format the end-of-stage benchmark asks in; their stems are worded
unlike the benchmark's (medqa_questions.py), whose questions stay held out.
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import BODY_SYSTEMS, Condition
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import (capitalize, definition_sentence, join_phrases,
                                    shuffled_symptoms, symptoms_sentence, system_sentence,
                                    test_sentence, treatment_sentence)
from medjax.eval.prompts import EN

SYSTEM_PROMPTS = (
    "You are a careful medical assistant. Answer briefly and accurately.",
    "You are a helpful doctor explaining medicine in plain English.",
)
MULTI_TURN_SHARE = 0.3
SYSTEM_TURN_SHARE = 0.15
MC_PER_KIND = 2  # multiple-choice questions per condition and kind (diagnosis, treatment, test)
LETTERS = "ABCD"


def render_sft(conditions, rng: random.Random) -> list[dict]:
    records = []
    for c in conditions:
        turns = [definition_qa(c, rng), symptoms_qa(c, rng), test_qa(c, rng),
                 treatment_qa(c, rng), vignette_qa(c, rng), *multiple_choice_qas(c, conditions, rng)]
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


def multiple_choice_qas(c: Condition, conditions, rng: random.Random) -> list[tuple[str, str]]:
    """MC_PER_KIND questions of each kind: the diagnosis of a vignette among conditions of the same
    body system (as the benchmark asks it), and the treatment and key test (none for a clinical
    diagnosis) among options from the same system or, for half of them, from others."""
    qas = []
    for _ in range(MC_PER_KIND):
        qas.append(_diagnosis_mc(c, conditions, rng))
        for field in ("treatment", "test")[:1 if c.is_clinical_diagnosis else 2]:
            qas.append(_fact_mc(c, conditions, field, rng))
    return qas


def _diagnosis_mc(c: Condition, conditions, rng: random.Random) -> tuple[str, str]:
    patient = draw_patient(c, rng)
    findings = join_phrases(shuffled_symptoms(c, rng))
    stem = rng.choice([f"{capitalize(patient.description)} has {findings}. Which condition is most likely?",
                       f"A doctor sees {patient.description} with {findings}. What is the diagnosis?"])
    wrong = pick_distractors(c, conditions, "name", 3, rng, same_system=True, sex=patient.sex)
    return _lettered(stem, c.name, [w.name for w in wrong], rng)


def _fact_mc(c: Condition, conditions, field: str, rng: random.Random) -> tuple[str, str]:
    if field == "test":
        stem = rng.choice([f"Which of the following is the key test for {c.name}?",
                           f"Which investigation confirms {c.name}?"])
    else:
        stem = rng.choice([f"Which of the following is the first-line treatment for {c.name}?",
                           f"A patient has {c.name}. Which treatment is usually started first?"])
    wrong = pick_distractors(c, conditions, field, 3, rng, same_system=rng.random() < 0.5)
    return _lettered(stem, getattr(c, field), [getattr(w, field) for w in wrong], rng)


def _lettered(stem: str, right: str, wrong: list[str], rng: random.Random) -> tuple[str, str]:
    """(the evaluation's prompt for a single-answer question, "Answer: <letter>")."""
    options = [right, *wrong]
    rng.shuffle(options)
    listed = "\n".join(f"{letter}. {capitalize(text)}" for letter, text in zip(LETTERS, options))
    prompt = f"{EN.mc_header}\n\n{EN.question}{stem}\n{listed}"
    return prompt, f"{EN.cue}{EN.label_sep}{LETTERS[options.index(right)]}"


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
