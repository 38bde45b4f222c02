"""The Python surface: `medjax.load(spec) -> LM` with logits, generate, tokenizer and save."""
from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.atomic_dir import check_destination
from medjax.checkpoint.hf_model import load_hf_model, save_hf_model
from medjax.checkpoint.params_io import load_params_model, save_params, tokenizer_dir
from medjax.checkpoint.safetensors_shards import DEFAULT_MAX_SHARD_SIZE, export_dtype
from medjax.data.tokenizer import Tokenizer, has_tokenizer, load_tokenizer
from medjax.infer.generate import generate as _generate
from medjax.models.layers import positions_from_segments
from medjax.specs import parse_spec, resolve_hf_path


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens, positions, segment_ids):
    return nnx.merge(graphdef, state)(tokens, positions, segment_ids)


class LM:
    """A loaded model with its tokenizer (when the spec had one)."""

    def __init__(self, model, tokenizer: Tokenizer | None = None, spec: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        if tokenizer is not None and tokenizer.vocab_size > model.config.vocab_size:
            raise ValueError(f"{spec}: tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has "
                             f"only {model.config.vocab_size} rows (vocab_size in the model config)")

    @property
    def config(self):
        return self.model.config

    def logits(self, ids_BxT, segment_ids_BxT=None, positions_BxT=None) -> np.ndarray:
        """float32 logits [B, T, V]. segment_ids (0 = padding) keep packed sequences apart."""
        ids = np.asarray(ids_BxT, dtype=np.int32)
        if ids.ndim != 2:
            raise ValueError(f"logits: expected token ids of shape [B, T], got {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            raise ValueError(f"logits: token id out of range [0, {self.config.vocab_size})")
        seg = np.ones_like(ids) if segment_ids_BxT is None else np.asarray(segment_ids_BxT, np.int32)
        pos = positions_from_segments(seg) if positions_BxT is None else np.asarray(positions_BxT, np.int32)
        graphdef, state = nnx.split(self.model)
        return np.asarray(_forward(graphdef, state, ids, pos, seg), dtype=np.float32)

    def generate(self, ids, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int = 0, eos_id=None) -> list[list[int]]:
        """New token ids per prompt (a list of id lists, or one [B, T] array without padding)."""
        prompts = [[int(t) for t in row] for row in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        prepare = getattr(self.model, "generation_prompt", None)  # GLM v1: appends [gMASK] <sop> when missing
        if prepare is not None:
            prompts = [prepare(p) for p in prompts]
        if eos_id is None:
            eos_id = self.config.eos_token_id
            if eos_id is None and self.tokenizer is not None:
                eos_id = self.tokenizer.eos_id
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        return _generate(self.model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                         top_k=top_k, seed=seed, eos_id=eos_id, pad_id=pad)

    def save(self, spec: str, dtype: str | None = None, overwrite: bool = False,
             max_shard_size: int = DEFAULT_MAX_SHARD_SIZE) -> None:
        """Writes the plain backbone: LoRA adapters merged, quantised weights dequantised
        (`python -m medjax.convert --dst=peft:DIR` writes adapters on their own). A destination that
        exists and is not empty needs overwrite=True; it is then replaced as a whole, and only once the
        new export is complete. hf: weights go in shards of at most `max_shard_size` bytes."""
        from medjax.peft.setup import backbone_of

        s = parse_spec(spec)
        if s.kind == "peft":
            raise ValueError(f"save({spec!r}): peft: export needs an adapter run (python -m medjax.convert)")
        if s.kind == "ckpt" and dtype is not None:
            raise ValueError(f"save({spec!r}, dtype={dtype!r}): a ckpt: keeps the model's param_dtype; dtype "
                             "applies to hf: exports")
        export_dtype(dtype)
        check_destination(s.path, overwrite, what=f"save({spec!r})")
        if s.kind == "hf":
            save_hf_model(backbone_of(self.model), s.path, self.tokenizer, dtype=dtype, max_shard_size=max_shard_size)
        else:
            save_params(s.path, backbone_of(self.model), self.tokenizer)


def load(spec: str, tokenizer: str | None = None, **overrides) -> LM:
    """Loads "hf:DIR" (or a hub name when online) or "ckpt:DIR"; overrides change config fields
    such as dtype="bfloat16" or remat="full"."""
    s = parse_spec(spec)
    if s.kind == "hf":
        directory = resolve_hf_path(s.path)
        model = load_hf_model(directory, **overrides)
        tok_dir = directory if has_tokenizer(directory) else None
    elif s.kind == "ckpt":
        model, config_dir = load_params_model(s.path, **overrides)
        tok_dir = tokenizer_dir(config_dir)
    else:
        raise ValueError(f"load({spec!r}): a peft: adapter needs its base model: use python -m medjax.convert "
                         "--src=peft:DIR --base=hf:DIR")
    if tokenizer is not None:
        tok_dir = tokenizer
    tok = load_tokenizer(tok_dir) if tok_dir else None
    return LM(model, tok, str(s))


def describe(lm: LM) -> str:
    cfg = lm.config
    return (f"{cfg.family} model: {cfg.num_layers} layers, hidden {cfg.hidden_size}, {cfg.num_heads} heads "
            f"({cfg.num_kv_heads} kv), vocab {cfg.vocab_size}, {cfg.num_params() / 1e6:.1f}M parameters")
