"""Few-shot examples from a task's dev split, drawn with a fixed seed.

By default every question gets the same k shots. When the dev split is also the evaluated split,
a question never sees itself: a drawn shot equal to the question is swapped for one spare draw.
With `per_question=True` each question gets its own draw, seeded by (seed, question index).
"""
from __future__ import annotations

import random
from typing import Sequence

from medjax.eval.question import Question


def _key(q: Question) -> tuple[str, str]:
    return q.source, q.id


def select_shots(questions: Sequence[Question], pool: Sequence[Question], k: int, seed: int,
                 per_question: bool = False) -> list[list[Question]]:
    if k == 0:
        return [[] for _ in questions]
    if len(pool) < k + 1 and any(_key(q) in {_key(p) for p in pool} for q in questions):
        raise ValueError(f"{k} shots need at least {k + 1} dev questions when dev is also evaluated; "
                         f"the dev split has {len(pool)}")
    if len(pool) < k:
        raise ValueError(f"{k} shots requested but the dev split has only {len(pool)} questions")
    if per_question:
        return [_draw(pool, k, random.Random(f"{seed}:{i}"), q) for i, q in enumerate(questions)]
    drawn = random.Random(seed).sample(list(pool), min(len(pool), k + 1))
    fixed, spare = drawn[:k], drawn[k:]
    return [[spare[0] if _key(s) == _key(q) else s for s in fixed] for q in questions]


def _draw(pool: Sequence[Question], k: int, rng: random.Random, question: Question) -> list[Question]:
    return rng.sample([p for p in pool if _key(p) != _key(question)], k)
