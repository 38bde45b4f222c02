"""Wrong answers that are checkably wrong.

A distractor for a question about condition X is the same field (name, test or treatment) of
another condition Y. It must not be secretly right: Y is rejected when the two texts share a
meaningful word (both "anticoagulation", both "amoxicillin", both "wheeze"), since overlapping
facts could make the "wrong" option correct.
"""
from __future__ import annotations

import random
import re

from medjax.assets.knowledge import Condition

# Words too common in the knowledge base to signal that two facts overlap.
_COMMON_WORDS = frozenset("""
    with such that when from they their this than after before into over most more very each
    during while also only both often usually first days week weeks month months year years
    three started starting course daily lifelong urgent early severe sudden slowly mild long
    oral removal surgical surgery treatment therapy tablet tablets drug medicine relief plus
    side body area part worse better new needed high low little raised level levels
    test tests blood scan examination clinical diagnosis history patient
""".split())

# Drugs of one class count as the same fact: penicillin V is not a safe wrong answer for a
# condition treated with amoxicillin. Each word also stands for its class name.
_DRUG_CLASSES = {
    "antibacterial": "antibiotic amoxicillin penicillin flucloxacillin cephalosporin ceftriaxone "
                     "doxycycline nitrofurantoin metronidazole chloramphenicol fusidic",
    "steroid": "corticosteroid prednisolone hydrocortisone fludrocortisone dexamethasone steroid",
    "anticoagulant": "anticoagulation anticoagulant heparin apixaban",
    "analgesic": "painkiller painkillers paracetamol ibuprofen diclofenac naproxen "
                 "anti-inflammatory aspirin",
    "glucose-lowering": "insulin metformin",
    "antiviral": "aciclovir oseltamivir antiretroviral",
    "fluids": "fluid fluids rehydration",
    # Tests of one kind, too: an antibody test is not a safe wrong answer for an antigen test.
    "molecular-test": "pcr nucleic amplification",
    "serology": "antibody antibodies antigen autoantibodies",
}
_CLASS_OF = {word: cls for cls, words in _DRUG_CLASSES.items() for word in words.split()}

FIELDS = ("name", "test", "treatment", "symptoms")


def content_words(text: str) -> set[str]:
    """Lower-cased, crudely singularised words of 4+ letters (or acronyms), minus common ones,
    plus the drug class of any drug named."""
    words = set()
    for w in re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z]+)*", text):
        if w.lower() in _CLASS_OF:
            words.add(_CLASS_OF[w.lower()])
        if len(w) < 4 and not (w.isupper() and len(w) > 1):
            continue
        w = w.lower()
        if w in _COMMON_WORDS:
            continue
        words.add(w[:-1] if w.endswith("s") and not w.endswith("ss") else w)
    return words


def field_text(c: Condition, field: str) -> str:
    if field not in FIELDS:
        raise ValueError(f"distractor field must be one of {FIELDS}, got {field!r}")
    return " ".join(c.symptoms) if field == "symptoms" else getattr(c, field)


def compatible(target: Condition, other: Condition, field: str) -> bool:
    """True when `other` gives a safe wrong answer for `field` of `target`."""
    if other.name == target.name:
        return False
    if content_words(field_text(target, field)) & content_words(field_text(other, field)):
        return False
    # A diagnosis option must differ in its presentation, not only in its name.
    if field == "name":
        return not content_words(" ".join(target.symptoms)) & content_words(" ".join(other.symptoms))
    return True


def pick_distractors(target: Condition, pool, field: str, k: int, rng: random.Random,
                     same_system: bool, sex: str | None = None) -> list[Condition]:
    """k conditions whose `field` is a safe wrong answer for `target`, preferring the same body
    system when `same_system` (harder options) and another system otherwise (clearly wrong).
    `sex` drops conditions that cannot occur in the vignette's patient."""
    candidates = [c for c in pool if compatible(target, c, field)
                  and (sex is None or c.sex in ("any", sex))
                  and not (field == "test" and c.is_clinical_diagnosis)]
    preferred = [c for c in candidates if (c.system == target.system) == same_system]
    rest = [c for c in candidates if (c.system == target.system) != same_system]
    rng.shuffle(preferred)
    rng.shuffle(rest)
    chosen: list[Condition] = []
    for c in preferred + rest:
        # Options must also be safely different from each other.
        if all(compatible(c, d, field) for d in chosen):
            chosen.append(c)
        if len(chosen) == k:
            return chosen
    raise ValueError(f"only {len(chosen)} safe distractors for {target.name!r} ({field}); "
                     f"need {k}")
