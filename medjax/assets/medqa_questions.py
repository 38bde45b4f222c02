"""A held-out MedQA-USMLE-style benchmark rendered from the knowledge base.

Records follow the original MedQA jsonl exactly: question, answer, options {A..D}, meta_info
("step1" | "step2&3"), answer_idx, metamap_phrases. The stems are worded differently from every
instruction and preference prompt (the facts are the same: the benchmark asks about them).
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import Condition
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import capitalize, join_phrases, shuffled_symptoms

LETTERS = ("A", "B", "C", "D")
KINDS = ("diagnosis", "treatment", "test")


def render_medqa(conditions, n_questions: int, rng: random.Random) -> list[dict]:
    """`n_questions` questions about distinct conditions; kinds rotate diagnosis/treatment/test."""
    if n_questions > len(conditions):
        raise ValueError(f"asked for {n_questions} questions but there are only "
                         f"{len(conditions)} conditions")
    chosen = rng.sample(list(conditions), n_questions)
    questions = []
    for i, c in enumerate(chosen):
        kind = KINDS[i % len(KINDS)]
        if kind == "test" and c.is_clinical_diagnosis:
            kind = "diagnosis"  # nothing to confirm with a test
        questions.append(_QUESTION_MAKERS[kind](c, conditions, rng))
    return questions


def diagnosis_question(c: Condition, conditions, rng: random.Random) -> dict:
    patient = draw_patient(c, rng)
    place = rng.choice(["the physician", "the emergency department", "an outpatient clinic"])
    symptoms = shuffled_symptoms(c, rng)
    stem = (f"{capitalize(patient.description)} comes to {place} because of "
            f"{join_phrases(symptoms)}. Which of the following is the most likely diagnosis?")
    wrong = pick_distractors(c, conditions, "name", 3, rng, same_system=True, sex=patient.sex)
    return _record(stem, c.name, [w.name for w in wrong], "step1",
                   [_age_sex(patient.description), *symptoms, "most likely diagnosis"], rng)


def treatment_question(c: Condition, conditions, rng: random.Random) -> dict:
    patient = draw_patient(c, rng)
    symptoms = shuffled_symptoms(c, rng)[:2]
    stem = (f"{capitalize(patient.description)} is evaluated for {join_phrases(symptoms)} and "
            f"is found to have {c.name}. Which of the following is the most appropriate "
            "first-line treatment?")
    wrong = pick_distractors(c, conditions, "treatment", 3, rng, same_system=False)
    return _record(stem, c.treatment, [w.treatment for w in wrong], "step2&3",
                   [_age_sex(patient.description), *symptoms, c.name, "first-line treatment"], rng)


def test_question(c: Condition, conditions, rng: random.Random) -> dict:
    patient = draw_patient(c, rng)
    symptoms = shuffled_symptoms(c, rng)
    stem = (f"{capitalize(patient.description)} presents with {join_phrases(symptoms)}. "
            f"The physician suspects {c.name}. Which of the following investigations or "
            "findings best confirms the diagnosis?")
    wrong = pick_distractors(c, conditions, "test", 3, rng, same_system=False)
    return _record(stem, c.test, [w.test for w in wrong], "step1",
                   [_age_sex(patient.description), *symptoms, c.name, "best test"], rng)


_QUESTION_MAKERS = {"diagnosis": diagnosis_question, "treatment": treatment_question,
                    "test": test_question}


def _record(question: str, answer: str, wrong: list[str], meta_info: str,
            phrases: list[str], rng: random.Random) -> dict:
    texts = [answer, *wrong]
    rng.shuffle(texts)
    options = {letter: capitalize(text) for letter, text in zip(LETTERS, texts)}
    answer_idx = LETTERS[texts.index(answer)]
    # Key order as in the original MedQA files.
    return {"question": question, "answer": options[answer_idx], "options": options,
            "meta_info": meta_info, "answer_idx": answer_idx, "metamap_phrases": phrases}


def _age_sex(description: str) -> str:
    """"a 45-year-old woman" -> "45 year old woman", the way MetaMap phrases read."""
    return description.split(" ", 1)[1].replace("-", " ")
