"""Word n-grams for overlap checks (decontamination, unification leakage).

Text is lower-cased and cut into Latin words/numbers and single CJK characters, so the same
n counts words in English and characters in Chinese, where words are not space-separated.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u9fff\uf900-\ufaff]")


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(text: str, n: int) -> set[str]:
    w = words(text)
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a parsed record (nested dicts and lists), in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings_in(v)
