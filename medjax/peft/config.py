"""The `peft` section of a training config, its checks, and peft_config.json (written to a stage
directory so that `ckpt:` loading rebuilds the adapter graph). Cheap to import: no jax here."""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections


METHODS = ("none", "lora", "qlora", "prompt")
FORMATS = ("nf4", "int8")  # qlora base storage (medjax/peft/quantized.py)
PEFT_CONFIG = "peft_config.json"  # in a stage / ckpt: directory, next to model_config.json


def peft_section() -> ml_collections.ConfigDict:
    p = ml_collections.ConfigDict()
    p.method = "none"  # none | lora | qlora | prompt
    p.rank = 8
    p.alpha = 16.0
    p.dropout = 0.05  # on the adapter input; active where the objective passes an rng (lora.dropout_rng)
    p.targets = "attn,mlp"  # roles (q,k,v,o,gate,up,down,lm_head,embed), groups (attn, mlp, all) or globs
    p.rslora = False  # scale alpha / sqrt(rank) instead of alpha / rank
    p.quant = "nf4"  # qlora base storage: nf4 | int8
    p.num_virtual_tokens = 20  # prompt tuning: soft-prompt length
    return p


@dataclasses.dataclass(frozen=True)
class PeftSettings:
    method: str = "none"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = "attn,mlp"
    rslora: bool = False
    quant: str = "nf4"
    num_virtual_tokens: int = 20

    def __post_init__(self):
        def need(cond, key, msg):
            if not cond:
                raise ValueError(f"config.peft.{key}={getattr(self, key)!r}: {msg}")

        need(self.method in METHODS, "method", f"expected one of {', '.join(METHODS)}")
        if self.method in ("lora", "qlora"):
            need(self.rank > 0, "rank", "must be positive")
            need(self.alpha > 0, "alpha", "must be positive")
            need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
            need(bool(str(self.targets).strip()), "targets", "names no layer")
        if self.method == "qlora":
            need(self.quant in FORMATS, "quant", f"expected one of {', '.join(FORMATS)}")
        if self.method == "prompt":
            need(self.num_virtual_tokens > 0, "num_virtual_tokens", "must be positive")

    @classmethod
    def from_config(cls, c) -> "PeftSettings":
        """From a training config (no `peft` section means full-parameter training)."""
        if "peft" not in c:
            return cls()
        p = c.peft
        return cls(method=p.method, rank=int(p.rank), alpha=float(p.alpha), dropout=float(p.dropout),
                   targets=str(p.targets), rslora=bool(p.rslora), quant=p.quant,
                   num_virtual_tokens=int(p.num_virtual_tokens))

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, PEFT_CONFIG), "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory: str) -> "PeftSettings | None":
        """The settings saved in `directory`, or None when it has no peft_config.json."""
        path = os.path.join(directory, PEFT_CONFIG)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            data = json.load(f)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}")
        return cls(**data)
