"""Instruction-tuning records in ShareGPT format, rendered from the knowledge base.

Every condition gets five single-turn questions (definition, symptoms, test, treatment and a short
case vignette) and multiple-choice questions (diagnosis, treatment, test); a share of conditions
also gets a two-turn dialogue, and a share of all records opens with a system turn, so templates
that handle system prompts are exercised.

Every multiple-choice question asks what only the knowledge answers (fresh distractors for each, the
diagnosis ones among conditions of the same body system as in the benchmark), in one of the two shapes
the end-of-stage benchmark asks in, and answered the way that shape is scored:
- lettered (eval.method=loglik): the evaluation's header, "Question: ", lettered options, answered
  "Answer: B"; within a condition and kind every letter is right equally often;
- cloze (eval.method=cloze): the cloze header and the stem without options, answered "Answer: " and
  the right option's text.
Their stems are worded unlike the benchmark's (medqa_questions.py), whose questions stay held out. The
tiny default model never learns to bind a letter to its option (configs/cp_ift.py), so the cloze
records are the larger share: they teach the answer's content in the shape the cloze method scores.
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import BODY_SYSTEMS, Condition
from medjax.assets.medqa_questions import LETTERS
from medjax.assets.patients import draw_patient
from medjax.assets.phrasing import (capitalize, definition_sentence, join_phrases,
                                    shuffled_symptoms, symptoms_sentence, system_sentence,
                                    test_sentence, treatment_sentence)
from medjax.eval.prompts import EN, body, header
from medjax.eval.question import Question

SYSTEM_PROMPTS = (
    "You are a careful medical assistant. Answer briefly and accurately.",
    "You are a helpful doctor explaining medicine in plain English.",
)
MULTI_TURN_SHARE = 0.3
SYSTEM_TURN_SHARE = 0.15
MC_PER_KIND = 2  # knowledge multiple-choice questions per condition and kind (diagnosis, treatment, test)
CLOZE_PER_KIND = 6  # the same questions without options, answered with the right text (eval.method=cloze)


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
    """MC_PER_KIND lettered and CLOZE_PER_KIND cloze questions of each kind (diagnosis, treatment, key
    test: none for a clinical diagnosis). Within a condition and kind the right letter takes every
    position equally often, so no letter is a better guess than another."""
    kinds = ["name", "treatment"] + ([] if c.is_clinical_diagnosis else ["test"])
    qas = []
    for kind in kinds:
        for i, position in enumerate(_positions(MC_PER_KIND, rng)):
            qas.append(_lettered(*_knowledge_question(c, conditions, kind, i, rng), position))
        stems = set()
        for i in range(4 * CLOZE_PER_KIND):  # distinct stems: a repeat could land in train and eval both
            stem, right, _ = _knowledge_question(c, conditions, kind, i, rng)
            if stem not in stems and len(stems) < CLOZE_PER_KIND:
                stems.add(stem)
                qas.append(_cloze(stem, right))
    return qas


def _positions(n: int, rng: random.Random) -> list[int]:
    """n right-answer positions, each letter n / 4 times (the remainder drawn at random)."""
    positions = list(range(len(LETTERS))) * (n // len(LETTERS))
    positions += rng.sample(range(len(LETTERS)), n % len(LETTERS))
    rng.shuffle(positions)
    return positions


def _knowledge_question(c: Condition, conditions, kind: str, i: int, rng: random.Random
                        ) -> tuple[str, str, list[str]]:
    """(stem, right answer, three wrong ones) of a question only the knowledge answers. Diagnosis
    options come from the same body system, as the benchmark's do; treatment and test options alternate
    between the same system and others."""
    patient = draw_patient(c, rng)
    findings = join_phrases(shuffled_symptoms(c, rng))
    p, cp = patient.description, capitalize(patient.description)
    if kind == "name":
        stem = rng.choice([f"{cp} has {findings}. Which condition is most likely?",
                           f"A doctor sees {p} with {findings}. What is the diagnosis?",
                           f"{cp} reports {findings}. Which of these conditions fits best?",
                           f"{cp} is seen with {findings}. Which diagnosis explains this?",
                           f"Findings in {p}: {findings}. Which condition do they point to?"])
        wrong = pick_distractors(c, conditions, kind, 3, rng, same_system=True, sex=patient.sex)
    else:
        stem = rng.choice(_FACT_STEMS[kind]).format(name=c.name, p=p, P=cp)
        wrong = pick_distractors(c, conditions, kind, 3, rng, same_system=i % 2 == 0)
    return stem, getattr(c, kind), [getattr(w, kind) for w in wrong]


_FACT_STEMS = {
    "treatment": ("Which of the following is the first-line treatment for {name}?",
                  "A patient has {name}. Which treatment is usually started first?",
                  "{P} has been diagnosed with {name}. What is the usual first treatment?",
                  "How is {name} usually treated first?",
                  "What should be started first for {p} with {name}?"),
    "test": ("Which of the following is the key test for {name}?",
             "Which investigation confirms {name}?",
             "{P} may have {name}. Which test would confirm it?",
             "How is a diagnosis of {name} confirmed?",
             "Which finding confirms a suspected diagnosis of {name}?"),
}


def _lettered(stem: str, right: str, wrong: list[str], position: int) -> tuple[str, str]:
    """(the evaluation's zero-shot user text for a single-answer question, "Answer: <letter>"), the
    right answer at `position`."""
    options = [*wrong]
    options.insert(position, right)
    question = Question(task="medqa", id="", question=stem, language="en", source="",
                        options={letter: capitalize(text) for letter, text in zip(LETTERS, options)},
                        answer=frozenset(LETTERS[position]))
    prompt = header(question, EN) + "\n\n" + body(question, EN)
    return prompt.rstrip("\n"), f"{EN.cue}{EN.label_sep}{LETTERS[position]}"


def _cloze(stem: str, right: str) -> tuple[str, str]:
    """(the cloze evaluation's zero-shot user text: its header and the stem without options, "Answer:
    <the right option's text>"): the answer the cloze method scores, in the shape it scores it."""
    question = Question(task="medqa", id="", question=stem, language="en", source="", options={},
                        answer=frozenset())
    prompt = EN.cloze_header + "\n\n" + body(question, EN, with_options=False)
    return prompt.rstrip("\n"), f"{EN.cue}{EN.label_sep}{capitalize(right)}"


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
