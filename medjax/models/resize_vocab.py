"""`model.resize_vocab`: grow a model's embedding table and LM head to a merged tokenizer's size
(`python -m medjax.data.vocab`, medjax/data/vocab.py).

The vocabulary dimension becomes the merged size rounded up to a multiple of 64 (so it still divides
the mesh axes `vocab` maps to). A new piece's row (embedding and head alike) starts as the mean of the
base rows of the pieces the BASE tokenizer splits it into; padding rows as the mean of all base rows.
Base rows are copied, so before training the model's logits on base ids are exactly the base model's.
Any variable whose logical axes name `vocab` grows, so tied and untied heads both work; the new model
keeps the parameter dtypes, and the caller places it with the usual shardings.
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

VOCAB_MULTIPLE = 64


def padded_vocab(n: int) -> int:
    return -(-n // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def new_vocab_size(rows: int, tokenizer_size: int) -> int:
    """The model's vocabulary after the resize: never smaller than it is."""
    return max(rows, padded_vocab(tokenizer_size))


def grow_rows(table_VxD: np.ndarray, sources: list[list[int]], base_size: int, new_size: int) -> np.ndarray:
    """`table` with `new_size` rows: row base_size + k is the mean of rows sources[k]; rows that did not
    exist and hold no piece are the mean of the base rows; other existing rows are kept."""
    rows = table_VxD.shape[0]
    if base_size > rows or base_size + len(sources) > new_size:
        raise ValueError(f"resize_vocab: {base_size} base + {len(sources)} new pieces do not fit "
                         f"{rows} -> {new_size} rows")
    work = table_VxD.astype(np.float32)
    fill = work[:base_size].mean(axis=0)
    out = np.empty((new_size,) + work.shape[1:], np.float32)
    out[:rows] = work[: min(rows, new_size)]
    out[rows:] = fill
    for k, ids in enumerate(sources):
        if not ids or min(ids) < 0 or max(ids) >= base_size:
            raise ValueError(f"resize_vocab: new piece {base_size + k} splits into {ids}, not base ids "
                             f"below {base_size}")
        out[base_size + k] = work[ids].mean(axis=0)
    return out.astype(table_VxD.dtype)


def resize_model(model, sources: list[list[int]], base_size: int, tokenizer_size: int, on_host: bool = False):
    """A copy of `model` whose vocabulary holds `tokenizer_size` ids (rounded up, see the module doc)."""
    from medjax.checkpoint.hf_model import model_from_params

    cfg = model.config
    size = new_vocab_size(cfg.vocab_size, tokenizer_size)
    _, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    grown = []
    for path, var in nnx.to_flat_state(state):
        axes = tuple(var.get_metadata().get("axes") or ())
        if "vocab" not in axes:
            continue
        axis = axes.index("vocab")
        value = np.moveaxis(np.asarray(jax.device_get(var.get_value())), axis, 0)
        if value.shape[0] != cfg.vocab_size:
            raise ValueError(f"resize_vocab: {'/'.join(map(str, path))} has {value.shape[0]} rows on its vocab "
                             f"axis, the config says {cfg.vocab_size}")
        _set(params, path, np.moveaxis(grow_rows(value, sources, base_size, size), 0, axis))
        grown.append(path)
    if not grown:
        raise ValueError(f"resize_vocab: no parameter of the {cfg.family} model has a 'vocab' axis")
    return model_from_params(cfg.replace(vocab_size=size), params, on_host=on_host)


def _set(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def resize_for_tokenizer(model, tokenizer_path: str, source_tokenizer: str | None, on_host: bool = False):
    """`model.resize_vocab`: `model` grown for the merged tokenizer at `tokenizer_path`. `source_tokenizer`
    is the tokenizer the weights came with, told apart by its SentencePiece model: the base one (the model
    grows), the merged one (a later stage: the model is returned as it is), or none (it grows when it has
    fewer rows than the merged tokenizer has ids)."""
    import os

    from medjax.data import vocab

    info = vocab.read_extension(tokenizer_path)
    if info is None:
        raise ValueError(f"config.model.resize_vocab: tokenizer {tokenizer_path} has no {vocab.EXTENSION_FILE}, so "
                         "which pieces are new is unknown; build it with python -m medjax.data.vocab")
    rows = model.config.vocab_size
    merged_file = os.path.join(tokenizer_path, "tokenizer.model")
    source = _sp_sha(source_tokenizer)
    if source == vocab.file_sha(merged_file) or (source_tokenizer is None and rows >= info["vocab_size"]):
        return model
    if source_tokenizer is not None and source != info["base_model_sha256"]:
        raise ValueError(f"config.model.resize_vocab: the model's own tokenizer {source_tokenizer} is neither the "
                         f"base {info.get('base')} that {tokenizer_path} extends nor that tokenizer (its "
                         "tokenizer.model differs from both)")
    if rows < info["base_vocab_size"]:
        raise ValueError(f"config.model.resize_vocab: the model has {rows} vocabulary rows, fewer than the "
                         f"{info['base_vocab_size']} pieces of the base tokenizer {info.get('base')}")
    merged = vocab.load_proto(merged_file)
    base = vocab.base_proto_of(merged, info, tokenizer_path)
    return resize_model(model, vocab.base_splits(merged, base), len(base.pieces), len(merged.pieces), on_host)


def _sp_sha(tokenizer: str | None) -> str | None:
    """Hash of a tokenizer's SentencePiece model (a .model file or a directory's tokenizer.model)."""
    import os

    from medjax.data.vocab import file_sha

    if tokenizer is None:
        return None
    path = os.path.join(tokenizer, "tokenizer.model") if os.path.isdir(tokenizer) else tokenizer
    return file_sha(path) if os.path.isfile(path) else ""
