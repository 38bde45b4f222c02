"""Reference-based score for open-ended answers (CMB-Clin): ROUGE-L F1 over characters for Chinese
text and over words otherwise, the usual choice for CMB-Clin style automatic comparison."""
from __future__ import annotations

import re


def units(text: str) -> list[str]:
    """Chinese characters one by one, other scripts word by word; punctuation dropped."""
    return re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text.lower())


def rouge_l_f1(prediction: str, reference: str) -> float:
    a, b = units(prediction), units(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:  # longest common subsequence, one row at a time
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)
