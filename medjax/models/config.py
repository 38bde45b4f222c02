"""ModelConfig: the one description of a decoder backbone that every family fills in."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any

import jax.numpy as jnp

REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
          "max_position_embeddings")


@dataclasses.dataclass
class ModelConfig:
    family: str = "llama"  # llama | mistral | glm | glm4 | glm_v1 | baichuan (see models/registry.py)
    vocab_size: int = 32000
    hidden_size: int = 512
    intermediate_size: int = 1344
    num_layers: int = 8
    num_heads: int = 8
    num_kv_heads: int = 8
    head_dim: int | None = None  # None -> hidden_size // num_heads
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None  # HF llama3 rope scaling dict, or None
    partial_rotary_factor: float = 1.0  # GLM rotates only the first half of each head
    rope_interleaved: bool = False  # GLM rotates (even, odd) pairs; LLaMA rotates halves
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    attention_bias: bool = False  # bias on q, k, v (GLM)
    post_norms: bool = False  # GLM-4: extra norms after attention and after the MLP
    sliding_window: int | None = None  # Mistral: a query sees the keys less than this many positions back
    alibi: bool = False  # Baichuan-13B: ALiBi attention biases instead of rope
    norm_head: bool = False  # Baichuan2: each LM head row L2-normalised before the matmul (NormHead)
    max_position_embeddings: int = 4096
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 2
    pad_token_id: int | None = None
    dtype: str = "float32"  # compute dtype (e.g. bfloat16)
    param_dtype: str = "float32"  # master weights
    remat: str = "none"  # one of REMAT_POLICIES
    extra: dict = dataclasses.field(default_factory=dict)  # family-specific HF fields kept for export

    def __post_init__(self):
        # a wrong type here would otherwise surface as a raw JAX error deep inside the model
        for key in _SIZES + (() if self.head_dim is None else ("head_dim",)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"ModelConfig.{key}={value!r}: expected a positive int")
        for key in ("rope_theta", "norm_eps", "partial_rotary_factor"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
                raise ValueError(f"ModelConfig.{key}={value!r}: expected a positive number")
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_heads
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        window = self.sliding_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1):
            raise ValueError(f"ModelConfig.sliding_window={window!r}: expected a positive int or None")
        for key in ("alibi", "norm_head"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"ModelConfig.{key}={getattr(self, key)!r}: expected true or false")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r}: expected one of {REMAT_POLICIES}")
        for key in ("dtype", "param_dtype"):
            try:
                jnp.dtype(getattr(self, key))
            except TypeError as e:
                raise ValueError(f"{key}={getattr(self, key)!r} is not a dtype") from e

    def __hash__(self):  # jit treats the config as static: hash its content
        return hash(self.to_json())

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def weight_dtype(self):
        return jnp.dtype(self.param_dtype)

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {unknown}")
        return cls(**d)

    def num_params(self) -> int:
        if self.family == "glm_v1":
            return self._glm_v1_num_params()
        d, f, hd = self.hidden_size, self.intermediate_size, self.head_dim
        attn = d * hd * (2 * self.num_heads + 2 * self.num_kv_heads)
        if self.attention_bias:
            attn += hd * (self.num_heads + 2 * self.num_kv_heads)
        norms = d * (4 if self.post_norms else 2)
        per_layer = attn + 3 * d * f + norms
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + self.num_layers * per_layer + d + head

    def _glm_v1_num_params(self) -> int:
        """GLM v1 (models/glm_v1.py): biases on every linear, LayerNorm weight + bias, a plain
        up/down MLP; GLM-10B adds two learned position tables of max_position_embeddings + 1 rows."""
        d, f, inner = self.hidden_size, self.intermediate_size, self.num_heads * self.head_dim
        attn = 3 * (d * inner + inner) + inner * d + d
        per_layer = attn + (d * f + f) + (f * d + d) + 2 * 2 * d
        positions = 2 * (self.max_position_embeddings + 1) * d if self.extra.get("flavour") == "glm" else 0
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + positions + self.num_layers * per_layer + 2 * d + head
