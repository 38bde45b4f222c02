"""Conversion between model specs (hf:, ckpt:, peft:); the library half of medjax.convert."""
from __future__ import annotations

import medjax
from medjax.checkpoint.atomic_dir import check_destination
from medjax.checkpoint.safetensors_shards import export_dtype
from medjax.specs import Spec, parse_spec


def convert(src: str, dst: str, base: str | None = None, merge: bool = False, dtype: str | None = None,
            overwrite: bool = False) -> None:
    """Every argument is checked before anything is loaded or written; a `dst` that exists and is not
    empty needs `overwrite`, and is replaced as a whole once the new export is complete."""
    s, d = parse_spec(src), parse_spec(dst)
    check_args(s, d, base, merge, dtype, overwrite)
    if s.kind == "peft" or d.kind == "peft" or merge:
        from medjax.peft.convert import convert_peft  # adapters: their own module

        convert_peft(s, d, base=base, merge=merge, dtype=dtype)
        return
    lm = medjax.load(src)
    lm.save(dst, dtype=dtype, overwrite=overwrite)
    print(f"wrote {dst}")


def check_args(s: Spec, d: Spec, base: str | None, merge: bool, dtype: str | None, overwrite: bool) -> None:
    """The errors that need no model: flags that do not fit together, an occupied destination."""
    export_dtype(dtype, "--dtype")
    if dtype is not None and d.kind == "ckpt":
        raise ValueError(f"--dtype={dtype}: --dst={d} keeps the model's param_dtype; --dtype applies to hf: and "
                         "peft: destinations")
    if s.kind == "peft":
        if not base:
            raise ValueError(f"--src={s} needs --base=hf:DIR (the model the adapter was trained on)")
        if parse_spec(base).kind != "hf":
            raise ValueError(f"--base={base}: expected hf:DIR")
    elif base:
        raise ValueError(f"--base={base}: only a --src=peft:DIR adapter takes a base model")
    method = _adapter_method(s)
    if merge and method == "none":
        raise ValueError(f"--merge: --src={s} has no adapters to merge")
    if merge and d.kind == "peft":
        raise ValueError("--merge writes a merged model; a peft: destination holds the adapters alone")
    if d.kind == "peft" and method == "none":
        raise ValueError(f"--dst={d}: --src={s} has no adapters to export")
    if method == "prompt" and (merge or d.kind == "hf"):
        raise ValueError(f"--src={s}: a soft prompt is an input, not a weight, so it cannot be merged into a plain "
                         "model; keep it with --dst=peft:DIR or --dst=ckpt:DIR (without --merge)")
    if s.kind == "peft" and d.kind == "hf" and not merge:
        raise ValueError(f"--dst={d}: an hf: directory holds plain weights; pass --merge to merge the adapters "
                         "into them (or --dst=peft:DIR for the adapters alone)")
    check_destination(d.path, overwrite, what=f"--dst={d}")


def _adapter_method(s: Spec) -> str:
    """The PEFT method a source holds ('none' for plain weights), read from its config files alone."""
    if s.kind == "hf":
        return "none"
    if s.kind == "peft":
        from medjax.peft.prompt_io import is_prompt_adapter

        return "prompt" if is_prompt_adapter(s.path) else "lora"
    from medjax.checkpoint.params_io import resolve_ckpt
    from medjax.peft.config import PeftSettings

    settings = PeftSettings.load(resolve_ckpt(s.path)[0])
    return "none" if settings is None else settings.method
