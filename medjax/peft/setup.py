"""Turns a backbone into its PEFT form (model surgery) and back; the one entry point the trainer,
checkpoint loading and conversion use."""
from __future__ import annotations

from flax import nnx

from medjax.models.layers import Embed
from medjax.models.registry import family_module
from medjax.peft.config import PeftSettings
from medjax.peft.lora import LoRALinear, LoRAModule, LoRAParam, merged_backbone, replace_module
from medjax.peft.lora_embedding import LoRAEmbed
from medjax.peft.prompt_tuning import PromptParam, add_soft_prompt, is_prompt_tuned, without_soft_prompt
from medjax.peft.quantized import QuantizedLinear
from medjax.peft.targets import resolve_targets


def _module_at(model, path: tuple):
    for key in path:
        model = model[key] if isinstance(key, int) else getattr(model, key)
    return model


def apply_lora(model, settings: PeftSettings, seed: int = 0):
    """In place: every targeted Linear becomes a LoRALinear (a targeted Embed a LoRAEmbed); with qlora
    every decoder-layer Linear is quantised first. Returns the model."""
    targets = resolve_targets(model, settings.targets)
    if settings.method == "qlora":
        for path in resolve_targets(model, "all"):
            name = "/".join(map(str, path))
            replace_module(model, path, QuantizedLinear(_module_at(model, path), settings.quant, what=name))
    rngs = nnx.Rngs(seed)
    for layer_id, path in enumerate(targets):
        base = _module_at(model, path)
        kw = dict(rank=settings.rank, alpha=settings.alpha, rslora=settings.rslora, rngs=rngs)
        adapter = (LoRAEmbed(base, **kw) if isinstance(base, Embed) else
                   LoRALinear(base, dropout=settings.dropout, layer_id=layer_id, **kw))
        replace_module(model, path, adapter)
    return model


def apply_peft(model, settings: PeftSettings, seed: int = 0):
    """The model to train under `settings` (the input model may be changed in place)."""
    if settings.method == "none":
        return model
    if settings.method == "prompt":
        return add_soft_prompt(model, settings.num_virtual_tokens, rngs=nnx.Rngs(seed))
    return apply_lora(model, settings, seed)


def trainable_filter(settings: PeftSettings):
    return {"none": nnx.Param, "lora": LoRAParam, "qlora": LoRAParam, "prompt": PromptParam}[settings.method]


def has_peft(model) -> bool:
    return is_prompt_tuned(model) or any(
        isinstance(m, (LoRAModule, QuantizedLinear)) for _, m in nnx.iter_modules(model))


def backbone_of(model, merge: bool = True):
    """The plain backbone: adapters merged (or dropped with merge=False), quantised weights
    dequantised, soft prompt dropped. A model without PEFT parts comes back as it is."""
    if is_prompt_tuned(model):
        return without_soft_prompt(model)
    if not has_peft(model):
        return model
    return merged_backbone(model, merge=merge)


def abstract_peft_model(cfg, settings: PeftSettings):
    """The PEFT graph of backbone config `cfg` with shapes only, e.g. to restore a checkpoint into."""
    return nnx.eval_shape(lambda: apply_peft(family_module(cfg.family).build(cfg, nnx.Rngs(0)), settings))
