"""The canonical record every input format is turned into, and the error bad input raises."""
from __future__ import annotations

import dataclasses


class DataError(ValueError):
    """Bad input data; the message names the file and line (or record) at fault."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One training example, whatever file format it came from.

    Exactly one shape is filled:
      - raw text: `text`;
      - dialogue: `messages` (role in system/user/assistant, ending with an assistant turn);
      - preference pair: `messages` is the prompt (ending with a user turn), plus `chosen`/`rejected`.
    `origin` is "file:line" (or "dataset[index]") for error messages and provenance.
    """

    origin: str
    text: str | None = None
    messages: tuple[dict, ...] = ()
    chosen: str | None = None
    rejected: str | None = None

    @property
    def shape(self) -> str:
        if self.text is not None:
            return "text"
        if self.chosen is not None:
            return "pref"
        return "chat"
