"""Whether a prompt is wrapped in a chat template when the user did not say (`medjax.generate`).

An instruction-tuned model answers a bare question badly or not at all (it learned to answer after
the template's assistant turn), so the default follows how the model was trained: a medjax stage of
kind sft or pref (read from its lineage.json; also for the stage's `hf/` export) uses the template
that stage trained with; any other model uses its tokenizer's own chat template when it carries one,
and plain text otherwise.
"""
from __future__ import annotations

import json
import os

from medjax.specs import parse_spec

CHAT_KINDS = ("sft", "pref")


def trained_chat(spec: str, tokenizer) -> tuple[bool, str | None, str]:
    """(use the template, template name or None for the default one, why) for the model at `spec`."""
    lineage = _lineage(spec)
    if lineage is not None:
        stage, config = lineage.get("stage"), lineage.get("config") or {}
        section = config.get(stage) or {}
        if section.get("kind") in CHAT_KINDS:  # single-stage configs keep their data at config.data
            template = (section.get("data") or config.get("data") or {}).get("template")
            return True, template, f"stage {stage!r} was trained on chat records ({section['kind']})"
        return False, None, f"stage {stage!r} was trained on plain text ({section.get('kind', 'lm')})"
    if tokenizer is not None and tokenizer.chat_template:
        return True, None, "the tokenizer carries a chat template"
    return False, None, "the model has no chat template"


def _lineage(spec: str) -> dict | None:
    """The lineage.json of the medjax stage behind `spec`, if there is one."""
    s = parse_spec(spec)
    if s.kind == "ckpt":
        from medjax.checkpoint.params_io import resolve_ckpt

        candidates = [resolve_ckpt(s.path)[0]]
    else:  # WORKDIR/<stage>/hf is a stage's export
        candidates = [os.path.dirname(os.path.abspath(s.path))]
    for directory in candidates:
        path = os.path.join(directory, "lineage.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    return None
