"""Settings shared by the evaluation methods (one object instead of long argument lists)."""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    batch_size: int = 8
    prompt_style: str = "auto"  # "auto" (the task's language) | "en" | "zh"
    chat: Callable[[str], str] | None = None  # user text -> rendered chat prompt
    max_new_tokens: int = 16  # direct answers (method=generate); open-ended items use max_reason_tokens
    max_reason_tokens: int = 256  # chain-of-thought paths, VoC arguments, open-ended answers
    cot_samples: int = 5  # k reasoning paths for self-consistency
    temperature: float = 0.7  # sampling temperature of the cot paths
    top_p: float = 0.95
    seed: int = 0
    progress: Callable[[str], None] = print
