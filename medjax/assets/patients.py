"""Plausible patients for case vignettes: age and sex drawn from the condition's record."""
from __future__ import annotations

import dataclasses
import random

from medjax.assets.knowledge import Condition


@dataclasses.dataclass(frozen=True)
class Patient:
    description: str  # "a 45-year-old woman", "a 7-month-old boy"
    pronoun: str      # "she" | "he"
    sex: str          # "female" | "male"


def draw_patient(c: Condition, rng: random.Random) -> Patient:
    sex = c.sex if c.sex != "any" else rng.choice(("female", "male"))
    lo, hi = c.ages
    age = rng.randint(lo, hi)
    if age == 0:
        noun = "girl" if sex == "female" else "boy"
        months = rng.randint(2, 11)
        return Patient(f"{_article(months)} {months}-month-old baby {noun}", _pronoun(sex), sex)
    if age < 18:
        noun = "girl" if sex == "female" else "boy"
    else:
        noun = "woman" if sex == "female" else "man"
    return Patient(f"{_article(age)} {age}-year-old {noun}", _pronoun(sex), sex)


def _article(number: int) -> str:
    """The article before a spoken number: "an 8-", "an 11-", "an 18-", "an 80-", else "a"."""
    return "an" if str(number).startswith("8") or number in (11, 18) else "a"


def _pronoun(sex: str) -> str:
    return "she" if sex == "female" else "he"
