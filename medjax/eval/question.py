"""The one record type every benchmark reader produces, and the errors readers raise."""
from __future__ import annotations

import dataclasses


class BenchmarkFormatError(ValueError):
    """A record of a benchmark file does not have the published format (names file and line)."""


class LayoutError(FileNotFoundError):
    """`data_dir` does not hold what a task or split needs (lists what was expected and found)."""


@dataclasses.dataclass(frozen=True)
class Question:
    """One evaluation item.

    `options` maps an answer label to its text, in presentation order: letters for multiple
    choice, the words themselves for PubMedQA (yes/no/maybe), empty for open-ended items.
    `answer` is the set of gold labels (several for multi-answer questions); open-ended items keep
    their reference text in `reference` instead.
    """

    task: str
    id: str
    question: str
    options: dict[str, str]
    answer: frozenset[str]
    language: str  # "en" | "zh": picks the prompt style
    source: str  # "file:line", for error messages and predictions
    multi: bool = False
    context: str = ""
    subject: str = ""
    reference: str = ""

    @property
    def open_ended(self) -> bool:
        return not self.options


def check_answer(labels, options: dict[str, str], where: str) -> frozenset[str]:
    """Validates gold labels against the option labels; `where` is "file:line"."""
    answer = frozenset(labels)
    if not answer:
        raise BenchmarkFormatError(f"{where}: empty answer")
    unknown = sorted(answer - set(options))
    if unknown:
        raise BenchmarkFormatError(
            f"{where}: answer {''.join(sorted(answer))!r} names {unknown}, not among options "
            f"{list(options)}")
    return answer
