"""ModelConfig: the one description of a decoder backbone that every family fills in."""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any

import jax.numpy as jnp

REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
ATTENTION_KERNELS = ("auto", "xla", "splash", "cudnn")  # models/attention_kernels.py
# the typed parts of the network (models/decoder.py builds every family from them)
CHOICES = {
    "positions": ("rope", "alibi", "glm2d_rope", "glm_learned"),
    "mask": ("causal", "prefix"),  # prefix: GLM v1's Part A attends bidirectionally
    "norm": ("rms", "layer"),  # layer: LayerNorm with a bias
    "mlp": ("gated_silu", "gelu_tanh", "gelu"),  # SwiGLU, or a plain up -> GeLU -> down
    "residual": ("pre_norm", "scaled_normed"),  # scaled_normed: ChatGLM-6B's alpha-scaled normalised input
}
GLM_V1_FLAVOURS = ("chatglm", "glm")
_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
          "max_position_embeddings")


@dataclasses.dataclass(frozen=True)
class GLMTokens:
    """GLM v1's blank-infilling ids: the blanks [MASK], [gMASK] (and [sMASK]), <sop> opening a span, <eop>."""
    mask: int
    gmask: int
    sop: int
    eop: int
    smask: int | None = None

    def __post_init__(self):
        for key, value in dataclasses.asdict(self).items():
            if not (value is None and key == "smask") and (
                    isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
                raise ValueError(f"ModelConfig.glm_tokens.{key}={value!r}: expected a token id (int >= 0)")

    @property
    def blanks(self) -> tuple[int, ...]:
        return tuple(i for i in (self.mask, self.smask, self.gmask) if i is not None)


class _KeptFields(dict):
    """ModelConfig.extra: HF fields kept verbatim for export. Reads of GLM v1's former `extra` keys
    (flavour, activation, the *_token_id ids) are answered from the typed fields, for code written
    against the old layout; they are never stored or serialised."""

    def __init__(self, *args, legacy: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._legacy = legacy or {}

    def __missing__(self, key):
        if key in self._legacy:
            return self._legacy[key]
        raise KeyError(key)

    def get(self, key, default=None):
        return self[key] if key in self or key in self._legacy else default


# the old GLM v1 `extra` keys (model_config.json written before the typed fields) -> GLMTokens fields
_OLD_GLM_TOKEN_KEYS = {"mask_token_id": "mask", "gmask_token_id": "gmask", "sop_token_id": "sop",
                       "eop_token_id": "eop", "smask_token_id": "smask"}


@dataclasses.dataclass
class ModelConfig:
    family: str = "llama"  # llama | mistral | qwen2 | glm | glm4 | glm_v1 | baichuan (see models/registry.py)
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
    positions: str = "rope"  # rope | alibi (Baichuan-13B) | glm2d_rope (ChatGLM-6B) | glm_learned (GLM-10B)
    mask: str = "causal"  # causal | prefix (GLM v1: Part A bidirectional; sliding_window applies to either)
    norm: str = "rms"  # rms | layer (LayerNorm with bias: GLM v1)
    mlp: str = "gated_silu"  # gated_silu (SwiGLU) | gelu_tanh (ChatGLM-6B) | gelu (erf, GLM-10B): up -> act -> down
    mlp_bias: bool = False  # biases on the MLP's linears (GLM v1)
    attention_out_bias: bool = False  # bias on o (GLM v1)
    residual: str = "pre_norm"  # pre_norm | scaled_normed (ChatGLM-6B: x = alpha * norm(x) + f(norm(x)))
    flavour: str | None = None  # GLM v1's checkpoint layout: chatglm (ChatGLM-6B) | glm (GLM-10B)
    glm_tokens: GLMTokens | None = None  # GLM v1's blank-infilling ids (the positions and mask read them)
    norm_head: bool = False  # Baichuan2: each LM head row L2-normalised before the matmul (NormHead)
    max_position_embeddings: int = 4096
    bos_token_id: int | None = 1
    eos_token_id: int | list | None = 2
    pad_token_id: int | None = None
    dtype: str = "float32"  # compute dtype (e.g. bfloat16)
    param_dtype: str = "float32"  # master weights
    remat: str = "none"  # one of REMAT_POLICIES
    attention: str = "auto"  # the no-cache attention kernel: one of ATTENTION_KERNELS (a run setting, like remat)
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
        for key in ("norm_head", "mlp_bias", "attention_out_bias"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"ModelConfig.{key}={getattr(self, key)!r}: expected true or false")
        for key, choices in CHOICES.items():
            if getattr(self, key) not in choices:
                raise ValueError(f"ModelConfig.{key}={getattr(self, key)!r}: expected one of {choices}")
        if self.flavour is not None and self.flavour not in GLM_V1_FLAVOURS:
            raise ValueError(f"unknown GLM variant: ModelConfig.flavour={self.flavour!r}; "
                             f"expected one of {GLM_V1_FLAVOURS}")
        if isinstance(self.glm_tokens, dict):
            fields = {f.name for f in dataclasses.fields(GLMTokens)}
            if not set(self.glm_tokens) <= fields or not {"mask", "gmask", "sop", "eop"} <= set(self.glm_tokens):
                raise ValueError(f"ModelConfig.glm_tokens={self.glm_tokens!r}: expected the ids mask, gmask, sop, "
                                 "eop (and optionally smask)")
            self.glm_tokens = GLMTokens(**self.glm_tokens)
        elif self.glm_tokens is not None and not isinstance(self.glm_tokens, GLMTokens):
            raise ValueError(f"ModelConfig.glm_tokens={self.glm_tokens!r}: expected a dict of token ids or None")
        self.extra = _KeptFields(self.extra, legacy=self._legacy_extra())
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r}: expected one of {REMAT_POLICIES}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"ModelConfig.attention={self.attention!r} (model.attention): expected one of "
                             f"{ATTENTION_KERNELS}")
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

    @property
    def alibi(self) -> bool:
        return self.positions == "alibi"

    def _legacy_extra(self) -> dict:
        """GLM v1's former `extra` keys, read from the typed fields (see _KeptFields)."""
        legacy = {}
        if self.flavour is not None:
            legacy.update(flavour=self.flavour, activation=self.mlp)
        if self.glm_tokens is not None:
            legacy.update({old: getattr(self.glm_tokens, new) for old, new in _OLD_GLM_TOKEN_KEYS.items()})
        return legacy

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["extra"] = dict(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = _upgrade(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {unknown}")
        return cls(**d)

    def num_params(self) -> int:
        d, f, hd = self.hidden_size, self.intermediate_size, self.head_dim
        norm = d * (2 if self.norm == "layer" else 1)  # LayerNorm has a bias
        attn = d * hd * (2 * self.num_heads + 2 * self.num_kv_heads)
        if self.attention_bias:
            attn += hd * (self.num_heads + 2 * self.num_kv_heads)
        if self.attention_out_bias:
            attn += d
        gated = self.mlp == "gated_silu"
        mlp = (3 if gated else 2) * d * f + (((2 if gated else 1) * f + d) if self.mlp_bias else 0)
        per_layer = attn + mlp + norm * (4 if self.post_norms else 2)
        positions = 2 * (self.max_position_embeddings + 1) * d if self.positions == "glm_learned" else 0
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + positions + self.num_layers * per_layer + norm + head


# GLM v1's network, per flavour: what the old `extra` flavour and activation stood for
GLM_V1_PARTS = {
    "chatglm": dict(positions="glm2d_rope", mask="prefix", norm="layer", mlp="gelu_tanh", mlp_bias=True,
                    attention_bias=True, attention_out_bias=True, residual="scaled_normed"),
    "glm": dict(positions="glm_learned", mask="prefix", norm="layer", mlp="gelu", mlp_bias=True,
                attention_bias=True, attention_out_bias=True, residual="pre_norm"),
}


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """A model_config.json written before the typed network parts -> today's keys: `alibi: bool` is
    `positions`, and GLM v1's `extra` (flavour, activation, special ids) the typed fields."""
    d = dict(d)
    if "alibi" in d:
        alibi = d.pop("alibi")
        if alibi is True:
            d["positions"] = "alibi"
        elif alibi is not False:
            raise ValueError(f"ModelConfig.alibi={alibi!r}: expected true or false")
    extra = dict(d.get("extra") or {})
    if d.get("family") == "glm_v1" and "flavour" in extra:
        flavour = extra.pop("flavour")
        if flavour not in GLM_V1_PARTS:
            raise ValueError(f"unknown GLM variant: extra['flavour']={flavour!r}; expected one of {GLM_V1_FLAVOURS}")
        d.update(GLM_V1_PARTS[flavour], flavour=flavour)
        if "activation" in extra:
            d["mlp"] = extra.pop("activation")
        tokens = {new: extra.pop(old) for old, new in _OLD_GLM_TOKEN_KEYS.items() if old in extra}
        d["glm_tokens"] = tokens
        d["extra"] = extra
    return d
