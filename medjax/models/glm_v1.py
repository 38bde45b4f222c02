"""GLM v1: the network of GLM-10B (AntGLM-Med's base) and ChatGLM-6B (DoctorGLM, ChatGLM-Med, BianQue).

GLM (Du et al. 2022, "GLM: General Language Model Pretraining with Autoregressive Blank Infilling")
reads a row as Part A (context, with [MASK]/[sMASK]/[gMASK] blanks) followed by Part B (each blank's
span, opened by <sop>). Part A attends bidirectionally to itself; Part B attends to Part A and
causally to Part B. Every token has two positions: its position in Part A (a Part B token takes the
position of its blank) and its block position (0 in Part A, 1, 2, ... from <sop> on).

Two flavours (`config.flavour`), each a set of the shared decoder's typed parts (config.GLM_V1_PARTS):
  chatglm  ChatGLM-6B: 2D rotary (first half of each head rotated by the position, second half by the
           block position; rotate-half pairs), LayerNorm, tanh-GeLU MLP, biases everywhere, residuals
           that add the *normalised* input scaled by alpha = sqrt(2 x num_layers), untied lm_head.
  glm      GLM-10B: learned position + block position embeddings added to the token embedding,
           pre-LN residuals, erf-GeLU MLP, output head tied to the token embedding.

GLMv1LM is models/decoder.py's DecoderLM with GLM's position provider (`token_layout`): it derives
positions, block positions and Part A (the prefix of the mask) from the token ids, per packed
segment: Part A = the tokens before the first <sop>; the i-th <sop> opens the span of the i-th blank
of Part A, except that a lone span fills the [gMASK] when Part A has one (the original code's rule
for one blank).
`positions` given as [B, T] are Part A positions (restarting per segment); [B, 2, T] are taken as
they are. With a KV cache, the first call that brings document tokens is the prompt and later calls
continue the last span (or, when the prompt had no <sop>, continue the context causally).

Tokens of segment layers.SHARED_SEGMENT (a soft prompt, peft/prompt_tuning.py) are context shared by
every packed document: Part A (block position 0) whatever their ids, visible to the tokens of every
segment, and attending only to each other, so one copy serves a packed row and can sit in a KV cache
before any document. Prompt tuning puts P of them at positions 0..P-1 in front of the row and moves
each document's positions P on: a document reads them as P extra context tokens in front of its own
Part A, whose blanks (and so its Part B positions) move P on while block positions stay. Unlike real
context tokens they do not read the document's Part A; with one layer, where only their input keys
and values matter, the two are the same.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.models.config import GLM_V1_FLAVOURS, GLM_V1_PARTS, GLMTokens, ModelConfig
from medjax.models.decoder import DecoderLM, TokenLayout
from medjax.models.hf_config_fields import ConfigFields, refuse_quantized
from medjax.models.layers import positions_from_segments
from medjax.models.weight_map import COPY, LINEAR, export_table, import_table

MODEL_TYPES = ()  # "chatglm" and GLM-10B's "glm" are routed here by models/glm.py:glm_layout
FLAVOURS = GLM_V1_FLAVOURS
SPECIAL_KEYS = ("mask_token_id", "smask_token_id", "gmask_token_id", "sop_token_id", "eop_token_id")
# the strings GLM-10B's tokenizer (GLMGPT2Tokenizer) gives these ids
GLM10B_TOKEN_STRINGS = {"mask_token_id": "[MASK]", "smask_token_id": "[sMASK]", "gmask_token_id": "[gMASK]",
                        "sop_token_id": "<|startofpiece|>", "eop_token_id": "<|endofpiece|>"}


# -- config ---------------------------------------------------------------------------------------

# fields of THUDM's ChatGLM-6B / GLM-10B code whose other values change the network: (field, the values we
# implement, why). The rest are read below, dropout rates (see models/hf_config_fields.py), or bookkeeping
# (GLM-10B's output_predict, parallel_output, pool_token, checkpoint_activations).
_REFUSED = {
    "chatglm": (("position_encoding_2d", (True,), "ChatGLM-6B uses 2D rotary"),
                ("quantization_bit", (0, None), "quantised weights: load the plain checkpoint"),
                ("pre_seq_len", (None,), "P-tuning v2 prefixes: load the plain checkpoint")),
    "glm": (("relative_encoding", (False,), "GLM-10B uses learned absolute positions"),
            ("attention_scale", (1.0,), "attention scores are q.k / sqrt(head dim)"),
            ("spell_length", (None,), "P-tuning (spell) prompts: load the plain checkpoint")),
}


def _glm10b_special_ids(f: ConfigFields) -> dict:
    """GLM-10B's published config.json has no special-token ids: take the ones it lacks from the
    tokenizer files beside it (`f.source` is the config.json path), looked up by their strings."""
    source = f.source
    special = {k: f.integer(k, None, minimum=0, null=None) for k in SPECIAL_KEYS}
    lacking = [k for k in SPECIAL_KEYS if special[k] is None]
    if not lacking:
        return special
    from medjax.data.glm_tokenizer import added_token_ids

    directory = os.path.dirname(source)
    found, looked_at = added_token_ids(directory) if os.path.isfile(source) else ({}, [])
    for key in lacking:
        special[key] = found.get(GLM10B_TOKEN_STRINGS[key])
        if special[key] is None and key != "smask_token_id":
            files = ", ".join(looked_at) or f"none: {source} is not a file in a model directory"
            raise KeyError(f"{source}: config.json lacks required field {key!r} (GLM-10B layout) and the tokenizer "
                           f"files beside it do not define {GLM10B_TOKEN_STRINGS[key]!r} (looked at: {files})")
    return special


def config_from_hf(hf: dict, source: str = "config.json") -> ModelConfig:
    flavour = "chatglm" if hf.get("model_type") == "chatglm" else "glm"
    f = ConfigFields(hf, source, "ChatGLM-6B layout" if flavour == "chatglm" else "GLM-10B layout")
    for key, supported, why in _REFUSED[flavour]:
        f.refuse(key, supported, why)
    refuse_quantized(f)
    hidden, heads, layers = f.integer("hidden_size"), f.integer("num_attention_heads"), f.integer("num_layers")
    f.divides("hidden_size", hidden, "num_attention_heads", heads)  # head dim = hidden_size // heads
    token = lambda key: f.integer(key, minimum=0)  # noqa: E731 -- a required token id
    if flavour == "chatglm":
        special = {"mask_token_id": token("mask_token_id"), "gmask_token_id": token("gmask_token_id"),
                   "smask_token_id": f.integer("smask_token_id", None, minimum=0, null=None),
                   "sop_token_id": token("bos_token_id"), "eop_token_id": token("eos_token_id")}
        inner, tie = f.integer("inner_hidden_size"), False
    else:
        if not f.flag("block_position_encoding"):  # the flag we read GLM-10B's position tables from
            raise f.error("block_position_encoding", "is not supported: GLM-10B uses 2D position embeddings")
        special = _glm10b_special_ids(f)
        inner, tie = 4 * hidden, True
    return ModelConfig(
        family="glm_v1",
        vocab_size=f.integer("vocab_size"),
        hidden_size=hidden,
        intermediate_size=inner,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=heads,
        norm_eps=f.number("layernorm_epsilon", 1e-5),
        tie_embeddings=tie,
        **GLM_V1_PARTS[flavour],
        flavour=flavour,
        glm_tokens=GLMTokens(mask=special["mask_token_id"], gmask=special["gmask_token_id"],
                             sop=special["sop_token_id"], eop=special["eop_token_id"],
                             smask=special["smask_token_id"]),
        max_position_embeddings=f.integer("max_sequence_length"),
        bos_token_id=special["sop_token_id"],
        eos_token_id=special["eop_token_id"],
        pad_token_id=f.token_ids("pad_token_id"),
        extra={"model_type": hf["model_type"]},
    )


def check_config(cfg: ModelConfig) -> None:
    if cfg.flavour not in FLAVOURS:
        raise ValueError(f"unknown GLM variant: ModelConfig.flavour={cfg.flavour!r}; expected one of {FLAVOURS}")
    if cfg.glm_tokens is None:
        raise KeyError("GLM v1 config lacks glm_tokens (the [MASK], [gMASK], <sop> and <eop> ids)")
    parts = GLM_V1_PARTS[cfg.flavour]
    differ = {key: getattr(cfg, key) for key, value in parts.items() if getattr(cfg, key) != value}
    if differ:  # the checkpoint layouts below implement exactly these networks
        raise ValueError(f"GLM v1 flavour {cfg.flavour!r} is the network {parts}; this config has {differ}")


def config_to_hf(cfg: ModelConfig) -> dict:
    ids = cfg.glm_tokens
    common = {"vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
              "num_attention_heads": cfg.num_heads, "layernorm_epsilon": cfg.norm_eps,
              "max_sequence_length": cfg.max_position_embeddings, "pad_token_id": cfg.pad_token_id,
              "mask_token_id": ids.mask, "gmask_token_id": ids.gmask, "torch_dtype": cfg.param_dtype}
    if ids.smask is not None:
        common["smask_token_id"] = ids.smask
    if cfg.flavour == "chatglm":
        return {**common, "architectures": ["ChatGLMModel"], "model_type": "chatglm",
                "inner_hidden_size": cfg.intermediate_size, "position_encoding_2d": True,
                "bos_token_id": ids.sop, "eos_token_id": ids.eop}
    return {**common, "architectures": ["GLMModel"], "model_type": "glm", "block_position_encoding": True,
            "relative_encoding": False, "attention_scale": 1.0, "output_predict": True,
            "sop_token_id": ids.sop, "eop_token_id": ids.eop}


# -- positions and the prefix mask from token ids -------------------------------------------------

def _segment_start(starts_BxT):
    """For every token, the slot where its segment starts."""
    return jax.lax.cummax(jnp.where(starts_BxT, jnp.arange(starts_BxT.shape[1]), 0), axis=1)


def _segment_cumsum(x_BxT, starts_BxT):
    """Running sum of x that restarts at every segment start."""
    total = jnp.cumsum(x_BxT, axis=1)
    return total - jnp.take_along_axis(total - x_BxT, _segment_start(starts_BxT), axis=1)


def _segment_total(x_BxT, starts_BxT):
    """For every token, the sum of x over its whole segment."""
    t = x_BxT.shape[1]
    ends = jnp.concatenate([starts_BxT[:, 1:], jnp.ones_like(starts_BxT[:, :1])], axis=1)
    end_idx = jax.lax.cummin(jnp.where(ends, jnp.arange(t), t - 1), axis=1, reverse=True)
    return jnp.take_along_axis(_segment_cumsum(x_BxT, starts_BxT), end_idx, axis=1)


def _nth_in_segment(flag_BxT, starts_BxT, n_BxT):
    """(slot, found): where the n-th (1-based) flagged token of each token's segment is."""
    b, t = flag_BxT.shape
    flag = flag_BxT.astype(jnp.int32)
    row_rank = jnp.cumsum(flag, axis=1)
    before_segment = jnp.take_along_axis(row_rank - flag, _segment_start(starts_BxT), axis=1)
    slot_of_rank = jnp.zeros((b, t + 1), jnp.int32).at[jnp.arange(b)[:, None], row_rank * flag].set(
        jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t)))
    wanted = jnp.clip(before_segment + n_BxT, 0, t)
    slot = jnp.take_along_axis(slot_of_rank, wanted, axis=1)
    found = ((n_BxT > 0) & (n_BxT <= _segment_total(flag, starts_BxT))
             & jnp.take_along_axis(flag_BxT, slot, axis=1) & (jnp.take_along_axis(row_rank, slot, axis=1) == wanted))
    return slot, found


def glm_positions(tokens_BxT, segment_ids_BxT, positions_BxT, special: dict):
    """(position, block position, is Part A) for every token; see the module docstring."""
    b, t = tokens_BxT.shape
    idx_T = jnp.arange(t)
    starts = jnp.concatenate([jnp.ones((b, 1), bool), segment_ids_BxT[:, 1:] != segment_ids_BxT[:, :-1]], axis=1)
    real = segment_ids_BxT != 0
    document = segment_ids_BxT > 0  # the shared segment is all context, whatever its (placeholder) ids
    is_sop = (tokens_BxT == special["sop"]) & document
    span_BxT = _segment_cumsum(is_sop.astype(jnp.int32), starts)  # 0 in Part A, then 1, 2, ...
    part_a = (span_BxT == 0) & real
    is_blank = jnp.isin(tokens_BxT, jnp.asarray(special["masks"], jnp.int32)) & part_a & document
    # span s fills the s-th blank of its segment; a lone span fills the [gMASK] when there is one,
    # as the original single-blank code does
    blank_slot, found = _nth_in_segment(is_blank, starts, span_BxT)
    gmask_slot, has_gmask = _nth_in_segment((tokens_BxT == special["gmask"]) & part_a, starts, jnp.ones_like(span_BxT))
    lone_gmask = has_gmask & (_segment_total(is_sop.astype(jnp.int32), starts) == 1)
    blank_slot, found = jnp.where(lone_gmask, gmask_slot, blank_slot), found | lone_gmask
    # no matching blank: the span sits right after Part A, like a continuation (positions may start
    # past 0: behind a soft prompt they start at its length)
    part_a_end = (jnp.take_along_axis(positions_BxT, _segment_start(starts), axis=1)
                  + _segment_cumsum(part_a.astype(jnp.int32), starts))
    span_pos = jnp.where(found, jnp.take_along_axis(positions_BxT, blank_slot, axis=1), part_a_end)
    last_sop = jax.lax.cummax(jnp.where(is_sop, idx_T, -1), axis=1)
    position = jnp.where(part_a | ~real, positions_BxT, span_pos)
    block = jnp.where(part_a | ~real, 0, idx_T - last_sop + 1)
    return position.astype(jnp.int32), block.astype(jnp.int32), part_a


# -- the model: the shared decoder with GLM's position provider ------------------------------------

class GLMv1LM(DecoderLM):
    """Token ids -> logits: models/decoder.py's DecoderLM, whose positions, block positions and Part A
    (the prefix mask) come from the ids (see the module docstring). positions: None (derived), [B, T]
    positions restarting per segment (blank positions are taken from them) or explicit [B, 2, T]."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        check_config(cfg)
        super().__init__(cfg, rngs=rngs)

    @property
    def special(self) -> dict:
        ids = self.config.glm_tokens
        return {"sop": ids.sop, "gmask": ids.gmask, "masks": list(ids.blanks)}

    def generation_prompt(self, ids: list[int]) -> list[int]:
        """The [gMASK] <sop> protocol: a prompt without <sop> gets `[gMASK] <sop>` appended."""
        special = self.config.glm_tokens
        return list(ids) if special.sop in ids else list(ids) + [special.gmask, special.sop]

    def init_cache(self, batch: int, max_len: int) -> dict:
        """The shared cache plus where a continuation goes on: next position and block position per row."""
        zeros_B = jnp.zeros((batch,), jnp.int32)
        return {**super().init_cache(batch, max_len), "next_position": zeros_B, "next_block": zeros_B}

    def token_layout(self, tokens_BxT, positions_BxT, segment_ids_BxT, cache) -> TokenLayout:
        position, block, part_a = self._positions(tokens_BxT, positions_BxT, segment_ids_BxT, cache)
        if cache is None:
            return TokenLayout(position, block, part_a)
        last_block, last_position = block[:, -1], position[:, -1]
        state = dict(next_position=jnp.where(last_block > 0, last_position, last_position + 1),
                     next_block=jnp.where(last_block > 0, last_block + 1, 0))
        return TokenLayout(position, block, part_a, state)

    def _positions(self, tokens_BxT, positions_BxT, segment_ids_BxT, cache):
        if positions_BxT is not None and positions_BxT.ndim == 3:  # explicit [B, 2, T] 2D positions
            position, block = positions_BxT[:, 0], positions_BxT[:, 1]
            return position, block, (block == 0) & (segment_ids_BxT != 0)
        if positions_BxT is None:
            positions_BxT = positions_from_segments(segment_ids_BxT)
        position, block, part_a = glm_positions(tokens_BxT, segment_ids_BxT, positions_BxT, self.special)
        if cache is None:
            return position, block, part_a
        # after the prompt, new tokens continue where the prompt's last token left off; the prompt is
        # the first call that meets no document keys in the cache (a soft prompt's may precede it)
        t = tokens_BxT.shape[1]
        steps_T = jnp.arange(t)
        cont_block = jnp.where(cache["next_block"][:, None] > 0, cache["next_block"][:, None] + steps_T, 0)
        cont_position = jnp.where(cache["next_block"][:, None] > 0, cache["next_position"][:, None],
                                  cache["next_position"][:, None] + steps_T)
        first_Bx1 = ~jnp.any(cache["segment_ids"] > 0, axis=1, keepdims=True)
        return (jnp.where(first_Bx1, position, cont_position), jnp.where(first_Bx1, block, cont_block),
                part_a & first_Bx1)


def build(cfg: ModelConfig, rngs: nnx.Rngs) -> GLMv1LM:
    return GLMv1LM(cfg, rngs=rngs)


# -- checkpoint layouts ---------------------------------------------------------------------------

def _layout(cfg: ModelConfig) -> tuple[str, str]:
    """(prefix of the transformer stack, prefix of the layers) in the original checkpoints."""
    return ("transformer.", "transformer.layers.{i}.") if cfg.flavour == "chatglm" else (
        "glm.transformer.", "glm.transformer.layers.{i}.")


def weight_table(cfg: ModelConfig):
    """Every weight except the fused query_key_value (see _qkv_order)."""
    stack, layer = _layout(cfg)
    table = [
        ("transformer.word_embeddings.weight" if cfg.flavour == "chatglm" else "glm.word_embeddings.weight",
         ("embed", "embedding"), COPY),
    ]
    for kind, ours in (("weight", "scale"), ("bias", "bias")):
        table += [(stack + f"final_layernorm.{kind}", ("final_norm", ours), COPY),
                  (layer + f"input_layernorm.{kind}", ("layers", "attn_norm", ours), COPY),
                  (layer + f"post_attention_layernorm.{kind}", ("layers", "mlp_norm", ours), COPY)]
    for theirs, path in (("attention.dense", ("attn", "o")), ("mlp.dense_h_to_4h", ("mlp", "up")),
                         ("mlp.dense_4h_to_h", ("mlp", "down"))):
        table += [(layer + theirs + ".weight", ("layers", *path, "kernel"), LINEAR),
                  (layer + theirs + ".bias", ("layers", *path, "bias"), COPY)]
    if cfg.flavour == "glm":
        table += [(stack + "position_embeddings.weight", ("position_embed", "embedding"), COPY),
                  (stack + "block_position_embeddings.weight", ("block_position_embed", "embedding"), COPY)]
    else:
        table.append(("lm_head.weight", ("lm_head", "kernel"), LINEAR))
    return table


def _qkv_order(cfg: ModelConfig, fused: np.ndarray) -> np.ndarray:
    """[3 * H * E, ...] -> [3, H * E, ...]. ChatGLM-6B interleaves per head (q_h, k_h, v_h);
    GLM-10B stacks all of q, then k, then v."""
    h, e = cfg.num_heads, cfg.head_dim
    if cfg.flavour == "chatglm":
        return np.swapaxes(fused.reshape(h, 3, e, *fused.shape[1:]), 0, 1).reshape(3, h * e, *fused.shape[1:])
    return fused.reshape(3, h * e, *fused.shape[1:])


def _qkv_fuse(cfg: ModelConfig, parts: np.ndarray) -> np.ndarray:
    h, e = cfg.num_heads, cfg.head_dim
    if cfg.flavour == "chatglm":
        return np.swapaxes(parts.reshape(3, h, e, *parts.shape[2:]), 0, 1).reshape(3 * h * e, *parts.shape[2:])
    return parts.reshape(3 * h * e, *parts.shape[2:])


def import_params(store, cfg: ModelConfig, shapes: dict, dtype, source: str) -> dict:
    check_config(cfg)
    params = import_table(store, weight_table(cfg), cfg.num_layers, shapes, dtype, source)
    _, layer = _layout(cfg)
    d = cfg.hidden_size
    kernels, biases = [], []
    for i in range(cfg.num_layers):
        for kind, expected, out in (("weight", (3 * d, d), kernels), ("bias", (3 * d,), biases)):
            name = layer.format(i=i) + f"attention.query_key_value.{kind}"
            if name not in store:
                raise KeyError(f"{source}: missing weight {name!r}")
            arr = np.asarray(store.get(name))
            if arr.shape != expected:
                raise ValueError(f"{source}: weight {name!r} has shape {arr.shape}, expected {expected} "
                                 "(3 x hidden_size, ...) from config.json")
            out.append(_qkv_order(cfg, arr))
    kernels, biases = np.stack(kernels), np.stack(biases)  # [L, 3, H*E, D], [L, 3, H*E]
    for j, role in enumerate("qkv"):
        params["layers"]["attn"][role] = {"kernel": np.swapaxes(kernels[:, j], 1, 2).astype(dtype),
                                          "bias": biases[:, j].astype(dtype)}
    return params


def export_params(params: dict, cfg: ModelConfig) -> dict:
    """Writes the original layout back (there is no transformers class for GLM v1)."""
    out = export_table(params, weight_table(cfg), cfg.num_layers)
    _, layer = _layout(cfg)
    attn = params["layers"]["attn"]
    for i in range(cfg.num_layers):
        kernels = np.stack([np.asarray(attn[r]["kernel"][i]).T for r in "qkv"])
        biases = np.stack([np.asarray(attn[r]["bias"][i]) for r in "qkv"])
        out[layer.format(i=i) + "attention.query_key_value.weight"] = _qkv_fuse(cfg, kernels)
        out[layer.format(i=i) + "attention.query_key_value.bias"] = _qkv_fuse(cfg, biases)
    return out


def fused_linears(cfg: ModelConfig) -> dict:
    """HF Linear modules that hold several of our layers, for PEFT adapters (peft/adapter_io.py):
    HF module name ('{i}' marks the layer) -> (our module paths, fuse, split), where fuse maps
    [parts, rows, ...] to the fused row order and split undoes it."""
    _, layer = _layout(cfg)
    return {layer + "attention.query_key_value": (tuple(("layers", "attn", r) for r in "qkv"),
                                                  lambda parts: _qkv_fuse(cfg, parts),
                                                  lambda fused: _qkv_order(cfg, fused))}
