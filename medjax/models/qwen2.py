"""Qwen2 / Qwen2.5: LLaMA's decoder and weight names plus biases on q, k and v (o has none).

transformers' Qwen2ForCausalLM always builds the q/k/v biases and never an MLP bias, whatever
`attention_bias` / `mlp_bias` say, so both fields are ignored here as there. Its sliding window is
per layer (layers from `max_window_layers` on): not implemented, so `use_sliding_window: true` and
any "sliding_attention" entry of `layer_types` are refused; published checkpoints use neither.
"""
from __future__ import annotations

from medjax.models import llama
from medjax.models.config import ModelConfig
from medjax.models.hf_config_fields import ConfigFields, decoder_hf_fields, rope_to_hf
from medjax.models.llama import build, export_params, import_params, weight_table  # noqa: F401 (same layout)

MODEL_TYPES = ("qwen2",)

# Where Qwen2Config's default for an absent field differs from LlamaConfig's
_QWEN2_DEFAULTS = {"num_key_value_heads": 32, "max_position_embeddings": 32768}
_IGNORED = ("attention_bias", "mlp_bias")  # transformers' Qwen2 does not read them


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    f = ConfigFields(hf, source, "Qwen2")
    if f.flag("use_sliding_window", False):
        raise f.error("use_sliding_window", "is not supported: Qwen2's per-layer sliding window (layers from "
                                            "max_window_layers on) is not implemented")
    layer_types = hf.get("layer_types")
    if layer_types is not None and (not isinstance(layer_types, list)
                                    or any(t != "full_attention" for t in layer_types)):
        raise f.error("layer_types", "is not supported: only full_attention layers are implemented")
    hf = {**_QWEN2_DEFAULTS, **{k: v for k, v in hf.items() if k not in _IGNORED}}
    return llama.config_from_hf(hf, source).replace(family="qwen2", attention_bias=True,
                                                    extra={"model_type": "qwen2"})


def config_to_hf(cfg: ModelConfig) -> dict:
    fields = {k: v for k, v in decoder_hf_fields(cfg).items() if k not in _IGNORED}
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", **fields, **rope_to_hf(cfg),
            "use_sliding_window": False, "sliding_window": None}
