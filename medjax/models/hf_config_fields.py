"""Typed readers for transformers config.json fields: the one home every model family reads through.

Every error names the file and the field. A family meets each config.json field in one of three ways:
  read     it sets part of ModelConfig; a wrong type, a null where none is allowed or an impossible value
           is an error here, never a raw TypeError from JAX later;
  refused  another value changes the network and medjax does not implement it (`refuse`);
  accepted bookkeeping (architectures, torch_dtype, use_cache, auto_map, transformers_version, ...),
           numerics-only switches (THUDM's apply_query_key_layer_scaling, fp32 softmax) and training-time
           dropout rates: medjax trains every family without model dropout, so a published rate (GLM-10B
           has 0.1) loads; nothing else about the network depends on it.
Each family module lists the fields it refuses, after reading the transformers (or THUDM) modeling code
for that model_type.
"""
from __future__ import annotations

import math

from medjax.models.config import ModelConfig

_MISSING = object()
# rope types whose inverse frequencies models/layers.py:rope_inv_freq computes, and the keys each reads
ROPE_TYPES = {"default": (), "linear": ("factor",),
              "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def _same(value, supported) -> bool:
    """== that keeps JSON true/false apart from 1/0."""
    if isinstance(value, bool) or isinstance(supported, bool):
        return value is supported
    return value == supported


class ConfigFields:
    """Reads one config.json dict. `source` (its path) and `layout` (what we read it as, e.g. "LLaMA")
    are quoted in every error."""

    def __init__(self, hf: dict, source: str, layout: str):
        if not isinstance(hf, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(hf).__name__}")
        self.hf, self.source, self.layout = hf, source, layout

    def error(self, key: str, problem: str) -> ValueError:
        return ValueError(f"{self.source}: {key}={self.hf.get(key)!r} {problem} ({self.layout})")

    def _value(self, key: str, default, null):
        """(value, whether config.json gave it): `default` when absent, `null` when null (where a null
        is allowed: `null` is not _MISSING); a required field (no default) must be there."""
        if key not in self.hf:
            if default is _MISSING:
                raise KeyError(f"{self.source}: config.json lacks required field {key!r} ({self.layout})")
            return default, False
        if self.hf[key] is None:
            if null is _MISSING:
                raise self.error(key, "is null; expected a value")
            return null, False
        return self.hf[key], True

    def integer(self, key: str, default=_MISSING, *, minimum: int = 1, null=_MISSING):
        value, given = self._value(key, default, null)
        if given and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise self.error(key, f"is not an integer >= {minimum}")
        return value

    def number(self, key: str, default=_MISSING) -> float:
        value, given = self._value(key, default, _MISSING)
        if given and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                      or value <= 0):
            raise self.error(key, "is not a positive number")
        return float(value)

    def flag(self, key: str, default=_MISSING) -> bool:
        value, given = self._value(key, default, _MISSING)
        if given and not isinstance(value, bool):
            raise self.error(key, "is not true or false")
        return value

    def token_ids(self, key: str, default=None, *, null=None):
        """A token id, a list of them (eos_token_id) or null."""
        value, given = self._value(key, default, null)
        ids = value if isinstance(value, list) else [value]
        if given and not (ids and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)):
            raise self.error(key, "is not a token id >= 0, a non-empty list of them or null")
        return value

    def refuse(self, key: str, supported: tuple, why: str) -> None:
        """An error when the field is there with a value outside `supported` (absent = the default,
        which `supported` holds)."""
        if key in self.hf and not any(_same(self.hf[key], s) for s in supported):
            raise self.error(key, f"is not supported: {why}")

    def divides(self, key: str, value: int, by_key: str, by: int) -> None:
        if value % by:
            raise self.error(key, f"is not a multiple of {by_key}={by}")

    def rope(self, *, default_theta: float, default_partial: float, max_positions: int | None,
             partial_supported: tuple | None = None):
        """(rope_theta, scaling dict or None, partial_rotary_factor) with transformers' priority: a legacy
        `rope_scaling` replaces `rope_parameters`; inside them rope_theta / partial_rotary_factor beat the
        top-level fields. Only the types in ROPE_TYPES are implemented; others change the frequencies."""
        key = "rope_scaling" if self.hf.get("rope_scaling") else "rope_parameters"
        params = self.hf.get(key) or {}
        if not isinstance(params, dict):
            raise self.error(key, "is not a JSON object")
        if any(isinstance(v, dict) for v in params.values()):
            raise self.error(key, "is not supported: one rope per layer type")
        inner = ConfigFields(params, self.source, f"{self.layout}, inside {key}")
        theta = inner.number("rope_theta", self.number("rope_theta", default_theta))
        partial_from = inner if "partial_rotary_factor" in params else self
        partial = partial_from.number("partial_rotary_factor", default_partial)
        if partial > 1 or (partial_supported is not None and partial not in partial_supported):
            raise partial_from.error("partial_rotary_factor", "is not supported: expected one of "
                                     f"{partial_supported}" if partial_supported else "is not in (0, 1]")
        kind = params.get("rope_type", params.get("type", "default"))
        if not isinstance(kind, str) or kind not in ROPE_TYPES:
            field = "rope_type" if "rope_type" in params else "type"
            raise inner.error(field, f"is not supported: implemented rope types are {sorted(ROPE_TYPES)}")
        if kind == "default":
            return theta, None, partial
        scaling = {"rope_type": kind}
        for name in ROPE_TYPES[kind]:
            if name == "original_max_position_embeddings":  # transformers falls back to max_position_embeddings
                scaling[name] = inner.integer(name, max_positions) if max_positions else inner.integer(name)
            else:
                scaling[name] = inner.number(name)
        return theta, scaling, partial


def refuse_quantized(f: ConfigFields) -> None:
    """A transformers quantised checkpoint (GPTQ, AWQ, bitsandbytes, ...) stores packed weights."""
    if f.hf.get("quantization_config") is not None:
        raise f.error("quantization_config", "is not supported: load the unquantised weights "
                      "(config.peft.method=qlora quantises them itself)")


# -- the write side: config.json fields that LLaMA-style transformers decoders share --------------

def rope_to_hf(cfg: ModelConfig) -> dict:
    params = {"rope_theta": cfg.rope_theta, "rope_type": "default", **(cfg.rope_scaling or {})}
    return {"rope_parameters": params, "rope_theta": cfg.rope_theta}


def decoder_hf_fields(cfg: ModelConfig) -> dict:
    """config.json fields every LLaMA-style transformers decoder (LLaMA, GLM, GLM-4) shares."""
    return {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": cfg.attention_bias,
        "max_position_embeddings": cfg.max_position_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": cfg.param_dtype,
    }
