"""Conversion between model specs (hf:, ckpt:, peft:); the library half of medjax.convert."""
from __future__ import annotations

import medjax
from medjax.specs import parse_spec


def convert(src: str, dst: str, base: str | None = None, merge: bool = False, dtype: str | None = None) -> None:
    s, d = parse_spec(src), parse_spec(dst)
    if s.kind == "peft" or d.kind == "peft" or merge:
        from medjax.peft.convert import convert_peft  # adapters: their own module

        convert_peft(s, d, base=base, merge=merge, dtype=dtype)
        return
    lm = medjax.load(src)
    lm.save(dst, dtype=dtype)
    print(f"wrote {dst}")
