"""Model weights as sharded safetensors, written tensor by tensor.

The layout (names, shapes, dtypes) is planned first, so each shard's header is written before its
data and every tensor goes to disk as soon as `read(name)` returns it: host memory holds one tensor
(or whatever group `read` produces together), not the shard or the model. File names and the index
follow transformers' save_pretrained: `model.safetensors` when everything fits one shard, else
`model-00001-of-0000N.safetensors` + `model.safetensors.index.json`, split in order as
huggingface_hub splits (a tensor larger than the maximum gets a shard of its own).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from typing import Callable, Sequence

import ml_dtypes
import numpy as np

DEFAULT_MAX_SHARD_SIZE = 50 * 10**9  # transformers 5's save_pretrained default, "50GB"
EXPORT_DTYPES = ("float32", "bfloat16", "float16")
_NAMES = {np.dtype(np.float32): "F32", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(np.float16): "F16"}
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def export_dtype(dtype: str | None, what: str = "dtype") -> np.dtype | None:
    """The numpy dtype of an export dtype name (None stays None); anything else is an error naming it."""
    if dtype is None:
        return None
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"{what}={dtype!r}: expected one of {', '.join(EXPORT_DTYPES)}")
    return np.dtype(dtype)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def plan_shards(specs: Sequence[TensorSpec], max_shard_size: int) -> list[list[TensorSpec]]:
    """Consecutive groups of at most `max_shard_size` bytes (a larger tensor alone in its own)."""
    if max_shard_size <= 0:
        raise ValueError(f"max_shard_size={max_shard_size}: expected a positive number of bytes")
    shards, current, size = [], [], 0
    for spec in specs:
        if current and size + spec.nbytes > max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append(spec)
        size += spec.nbytes
    if current:
        shards.append(current)
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def write_shards(directory: str, specs: Sequence[TensorSpec], read: Callable[[str], np.ndarray],
                 max_shard_size: int = DEFAULT_MAX_SHARD_SIZE) -> list[str]:
    """Writes the tensors of `specs` (read one by one, in order, cast to their spec's dtype) into
    `directory`; returns the files written (the index last, when there is one)."""
    shards = plan_shards(specs, max_shard_size)
    names = shard_names(len(shards))
    for name, shard in zip(names, shards):
        write_streamed(os.path.join(directory, name), shard, read)
    if len(shards) == 1:
        return names
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs),
                          "total_parameters": sum(math.prod(s.shape) for s in specs)},
             "weight_map": {s.name: name for name, shard in zip(names, shards) for s in shard}}
    with open(os.path.join(directory, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    return names + [INDEX_FILE]


def write_streamed(path: str, specs: Sequence[TensorSpec], read: Callable[[str], np.ndarray]) -> None:
    """One safetensors file: the header from `specs`, then each tensor as `read` hands it over."""
    header, offset = {}, 0
    for spec in specs:
        if spec.dtype not in _NAMES:
            raise ValueError(f"{path}: tensor {spec.name}: dtype {spec.dtype} is not one of {EXPORT_DTYPES}")
        header[spec.name] = {"dtype": _NAMES[spec.dtype], "shape": list(spec.shape),
                             "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keeps tensor data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for spec in specs:
            arr = np.ascontiguousarray(read(spec.name), dtype=spec.dtype)  # the one copy: layout + dtype
            if arr.shape != spec.shape:
                raise ValueError(f"{path}: tensor {spec.name} has shape {arr.shape}, planned {spec.shape}")
            f.write(arr.reshape(-1).view(np.uint8).data)
