"""`python -m medjax.convert` for adapters (medjax/convert.py dispatches here):

  --src=ckpt:RUN --dst=peft:DIR             LoRA adapters (or the soft prompt) of a run as a PEFT directory
  --src=ckpt:RUN --dst=hf:DIR --merge       the run's model with adapters merged (QLoRA: dequantised)
  --src=peft:DIR --base=hf:DIR --dst=ckpt:OUT | hf:OUT (merged) | peft:OUT

A PEFT adapter with no exact LoRA form here (a general adapter on GLM v1's fused query_key_value,
see adapter_io.py) converts only with --merge, which merges it into the weights as it is read.
"""
from __future__ import annotations

from medjax.checkpoint.hf_model import load_hf_model, save_hf_model
from medjax.checkpoint.params_io import load_params_model, save_params, tokenizer_dir
from medjax.data.tokenizer import has_tokenizer, load_tokenizer
from medjax.peft.adapter_io import export_adapter, import_adapter
from medjax.peft.config import PeftSettings
from medjax.peft.prompt_io import export_prompt, import_prompt, is_prompt_adapter
from medjax.peft.setup import backbone_of
from medjax.specs import parse_spec, resolve_hf_path


def _from_ckpt(path: str):
    model, config_dir = load_params_model(path)
    settings = PeftSettings.load(config_dir) or PeftSettings()
    tok = tokenizer_dir(config_dir)
    return model, settings, (load_tokenizer(tok) if tok else None)


def _from_peft(path: str, base: str | None, merge: bool):
    if not base:
        raise ValueError(f"--src=peft:{path} needs --base=hf:DIR (the model the adapter was trained on)")
    b = parse_spec(base)
    if b.kind != "hf":
        raise ValueError(f"--base={base}: expected hf:DIR")
    directory = resolve_hf_path(b.path)
    if is_prompt_adapter(path):
        model, settings = import_prompt(load_hf_model(directory), path)
    else:
        model, settings = import_adapter(load_hf_model(directory), path, merge=merge)
    return model, settings, (load_tokenizer(directory) if has_tokenizer(directory) else None)


def convert_peft(src, dst, base: str | None = None, merge: bool = False, dtype: str | None = None) -> None:
    """`src`/`dst` are medjax.specs.Spec values (or spec strings)."""
    src, dst = parse_spec(str(src)), parse_spec(str(dst))
    if src.kind == "ckpt":
        model, settings, tok = _from_ckpt(src.path)
    elif src.kind == "peft":
        model, settings, tok = _from_peft(src.path, base, merge)
    else:
        raise ValueError(f"--src={src}: adapters come from ckpt:RUN or peft:DIR (with --base=hf:DIR)")
    if settings.method == "prompt" and (merge or dst.kind == "hf"):
        raise ValueError(f"--src={src}: a soft prompt is an input, not a weight, so it cannot be merged into a "
                         "plain model; keep it with --dst=peft:DIR or --dst=ckpt:DIR (without --merge)")
    if dst.kind == "peft":
        if merge:
            raise ValueError("--merge writes a merged hf: model; a peft: destination holds the adapters alone")
        if settings.method == "prompt":
            export_prompt(model, dst.path, dtype=dtype)
        elif settings.method in ("lora", "qlora"):
            export_adapter(model, settings, dst.path, dtype=dtype)
        else:
            raise ValueError(f"--src={src}: has no adapters (peft method {settings.method!r}); nothing to export")
    elif dst.kind == "hf":
        if not merge:
            raise ValueError(f"--dst={dst}: an hf: directory holds plain weights; pass --merge to merge the "
                             "adapters into them (or --dst=peft:DIR for the adapters alone)")
        save_hf_model(backbone_of(model), dst.path, tok, dtype=dtype)
    else:  # ckpt: keeps the adapter graph; peft_config.json lets ckpt: loading rebuild it
        if merge:
            model, settings = backbone_of(model), PeftSettings()
        save_params(dst.path, model, tok, peft=settings if settings.method != "none" else None)
    print(f"wrote {dst}")
