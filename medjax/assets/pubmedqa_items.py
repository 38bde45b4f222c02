"""PubMedQA-format items (PQA-L: QUESTION, CONTEXTS, final_decision, ...) rendered from the knowledge base.

Each item is a small trial abstract about one condition and one treatment, whose RESULTS context says
that the treatment helped (yes), did not (no), or gave conflicting or inconclusive results (maybe); the
question asks whether that treatment works for that condition. Each answer has five wordings that share
their words with the other answers' ("no", "not", "most", "benefit", "improve" appear under two or three
answers), so no single word of the abstract gives the answer (tests/test_recipes.py). Only the
condition's own first-line treatment helps (the knowledge base stays true); a treatment that fails or is
inconclusive is another condition's, sharing no meaningful word with it (`distractors.compatible`).

Why one treatment per abstract: abstracts reporting three treatments (one of each answer), where only
matching the question's treatment to its sentence gives the answer, stayed at chance after 150 ta steps
of the embedded tiny GLM (2026-12-01); this version reaches 0.93 in 100.
"""
from __future__ import annotations

import random

from medjax.assets.distractors import pick_distractors
from medjax.assets.knowledge import Condition
from medjax.assets.phrasing import capitalize

DECISIONS = ("yes", "no", "maybe")

# result sentences per decision, {x} / {X} the treatment
RESULTS = {
    "yes": ["Patients given {x} improved markedly, with no relapse.",
            "With {x}, symptoms settled in most patients.",
            "{X} led to a clear and lasting improvement.",
            "Most patients on {x} recovered well, and none needed a second treatment.",
            "Those treated with {x} did significantly better than controls."],
    "no": ["{X} showed no measurable benefit.",
           "Patients given {x} did no better than those given a placebo.",
           "With {x}, symptoms persisted and did not change.",
           "{X} brought no improvement in any outcome.",
           "Most patients on {x} failed to improve."],
    "maybe": ["Results with {x} were mixed: some patients improved while others did not.",
              "Too few patients received {x} to tell whether it helped: no firm conclusion is possible.",
              "The effect of {x} was unclear for most outcomes, with wide confidence intervals.",
              "Two centres disagreed about {x}: one saw a benefit, the other none.",
              "{X} seemed to help at first, but the benefit was not confirmed at follow-up."],
}
QUESTIONS = ["Does {x} improve outcomes in {c}?",
             "Is {x} effective for {c}?",
             "Do patients with {c} benefit from {x}?",
             "Can {x} help adults with {c}?",
             "{X} for {c}: does it work?"]
BACKGROUNDS = ["We studied {n} adults with {c}.",
               "This trial enrolled {n} patients with {c}.",
               "The best first treatment for {c} is debated; we followed {n} cases.",
               "{n} patients with {c} were treated in three hospitals."]
CONCLUSIONS = {"yes": "{X} benefits patients with {c}.",
               "no": "{X} does not benefit patients with {c}.",
               "maybe": "Whether {x} benefits patients with {c} remains uncertain."}


def _fill(template: str, treatment: str, c: Condition) -> str:
    return template.format(x=treatment, X=capitalize(treatment), c=c.name)


def render_item(c: Condition, decision: str, pool, rng: random.Random) -> dict:
    """One PQA-L record about `c` whose gold answer is `decision`."""
    # only c's own treatment helps; one that fails or is inconclusive is another condition's
    given = c.treatment if decision == "yes" else pick_distractors(
        c, pool, "treatment", 1, rng, same_system=rng.random() < 0.5)[0].treatment
    background = rng.choice(BACKGROUNDS).format(n=rng.randrange(40, 400), c=c.name)
    return {
        "QUESTION": _fill(rng.choice(QUESTIONS), given, c),
        "CONTEXTS": [capitalize(background), _fill(rng.choice(RESULTS[decision]), given, c)],
        "LABELS": ["BACKGROUND", "RESULTS"],
        "MESHES": ["Humans", capitalize(c.name), "Treatment Outcome"],
        "YEAR": str(rng.randrange(1995, 2019)),
        "reasoning_required_pred": decision,
        "reasoning_free_pred": decision,
        "final_decision": decision,
        "LONG_ANSWER": _fill(CONCLUSIONS[decision], given, c),
    }


def render_pqal(conditions, pool, rounds: int, rng: random.Random) -> list[dict]:
    """`rounds` items per decision about each condition (balanced labels)."""
    return [render_item(c, d, pool, rng) for c in conditions for _ in range(rounds) for d in DECISIONS]
