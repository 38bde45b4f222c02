"""Reads the chosen option(s) out of generated text; `None` means unparseable, never a default.

Order of evidence (the first that yields an answer wins):
1. an explicit statement, taking the LAST one (reasoning usually ends with it):
   English "the answer is (C)", "Answer: C", "correct option is B and D";
   Chinese "答案：B", "正确答案是A、C", "故选D", "本题选C";
2. the text opens with the label(s): "C", "(C)", "C. Tell the attending...", "ACD", "yes, because";
3. the text quotes exactly one option's text verbatim (single-answer questions only).
Letters count only as capitals not glued to other letters or digits, so "Answer: Dementia" or
"B12 deficiency" are not read as D or B.
"""
from __future__ import annotations

import re
from typing import Mapping

_EN_CUE = r"(?i:(?:correct\s+|final\s+|best\s+)?(?:answers?|options?|choices?))"
_EN_VERB = r"(?:\s*(?i:is|are|would\s+be|should\s+be|will\s+be))?"
_ZH_CUE = r"(?:正确答案|参考答案|正确选项|答案|选项|应选|故选|本题选|选择|选)"
_ZH_VERB = r"(?:是|为|应为|应该是|应是)?"
_SEP = r"\s*(?:,|，|、|/|&|\band\b|和|及)?\s*"


def _letter_pattern(labels: str) -> str:
    one = f"[{labels}]"
    return rf"({one}(?:{_SEP}{one})*)(?![A-Za-z0-9])"


def _letters(group: str) -> frozenset[str]:
    return frozenset(re.findall(r"[A-Z]", group))


def extract_choice(text: str, options: Mapping[str, str]) -> frozenset[str] | None:
    """The set of option labels the text commits to, or None.

    Labels are letters ("A".."J") or words (PubMedQA's yes/no/maybe).
    """
    labels = list(options)
    if all(len(label) == 1 and label.isupper() for label in labels):
        return _extract_letters(text, options)
    return _extract_words(text, labels)


def _extract_letters(text: str, options: Mapping[str, str]) -> frozenset[str] | None:
    seq = _letter_pattern("".join(options))
    stated = list(re.finditer(
        rf"{_EN_CUE}{_EN_VERB}\s*[:：]?\s*(?i:options?|choices?)?\s*[\(\[（【*]*\s*{seq}", text))
    stated += re.finditer(rf"{_ZH_CUE}\s*{_ZH_VERB}\s*[:：]?\s*[\(\[（【*]*\s*{seq}", text)
    if stated:
        return _letters(max(stated, key=lambda m: m.start()).group(1))
    lead = re.match(rf"\s*[\(\[（【*]*\s*{seq}", text)
    if lead:
        rest = text[lead.end():]
        single = _letters(lead.group(1))
        quotes_option = len(single) == 1 and rest.strip().lower().startswith(
            _normalise(options[next(iter(single))])[:20])
        if re.match(r"\s*(?:$|[\)\]）】.．、:：,，*]|\n)", rest) or quotes_option:
            return single
    return _quoted_option(text, options)


def _quoted_option(text: str, options: Mapping[str, str]) -> frozenset[str] | None:
    haystack = _normalise(text)
    found = {k: _normalise(v) for k, v in options.items() if _normalise(v) and _normalise(v) in haystack}
    # An option whose text sits inside another quoted option's text is not evidence on its own.
    found = {k: v for k, v in found.items() if not any(v != w and v in w for w in found.values())}
    return frozenset(found) if len(found) == 1 else None


def _normalise(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().strip(".。").lower()


def _extract_words(text: str, labels: list[str]) -> frozenset[str] | None:
    words = "|".join(re.escape(w) for w in sorted(labels, key=len, reverse=True))
    stated = list(re.finditer(
        rf"(?i:answer|decision|conclusion)\s*(?i:is|would\s+be|:)?\s*[:：]?\s*[\(\[*\"']*\s*(?i:({words}))\b", text))
    stated += re.finditer(rf"答案\s*(?:是|为)?\s*[:：]?\s*(?i:({words}))\b", text)
    if stated:
        return frozenset([_label(max(stated, key=lambda m: m.start()).group(1), labels)])
    lead = re.match(rf"\s*[\(\[*\"']*\s*(?i:({words}))\b", text)
    if lead:
        return frozenset([_label(lead.group(1), labels)])
    return None


def _label(word: str, labels: list[str]) -> str:
    return next(label for label in labels if label.lower() == word.lower())
