"""Which variables a stage trains, and what it exports.

`config.peft.method` picks: none (every nnx.Param trains), lora / qlora (only LoRAParam adapters),
prompt (only the soft prompt). train/stage.py writes the stage's peft_config.json so that `ckpt:`
loading rebuilds the same graph.
"""
from __future__ import annotations

from medjax.peft.config import PeftSettings
from medjax.peft.setup import apply_peft, backbone_of, has_peft, trainable_filter


def prepare_trainable(c, model):
    """(model, trainable filter) for a stage: the model with the configured PEFT applied."""
    settings = PeftSettings.from_config(c)
    if has_peft(model):  # a PEFT parent stage: its adapters are merged into this stage's base
        model = backbone_of(model)
    if settings.method != "none":
        model = apply_peft(model, settings, seed=c.train.seed)
    return model, trainable_filter(settings)


def exportable_model(model):
    """The plain backbone to write as an HF directory (adapters merged, quantised weights dequantised)."""
    return backbone_of(model)
