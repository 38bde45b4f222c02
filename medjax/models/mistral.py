"""Mistral: LLaMA's decoder and weight names plus sliding-window attention (models/layers.py)."""
from __future__ import annotations

from medjax.models import llama
from medjax.models.config import ModelConfig
from medjax.models.hf_config_fields import ConfigFields, decoder_hf_fields, rope_to_hf
from medjax.models.llama import build, export_params, import_params, weight_table  # noqa: F401 (same layout)

MODEL_TYPES = ("mistral",)


# Where MistralConfig's default for an absent field differs from LlamaConfig's
_MISTRAL_DEFAULTS = {"sliding_window": 4096, "num_key_value_heads": 8, "max_position_embeddings": 4096 * 32}


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    hf = {**_MISTRAL_DEFAULTS, **hf}
    window = ConfigFields(hf, source, "Mistral").integer("sliding_window", null=None)  # null: plain causal
    # transformers' Mistral has no q/k/v bias whatever attention_bias says
    return llama.config_from_hf(hf, source).replace(family="mistral", attention_bias=False, sliding_window=window,
                                                    extra={"model_type": "mistral"})


def config_to_hf(cfg: ModelConfig) -> dict:
    return {"architectures": ["MistralForCausalLM"], "model_type": "mistral", **decoder_hf_fields(cfg),
            **rope_to_hf(cfg), "sliding_window": cfg.sliding_window}
