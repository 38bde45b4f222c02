"""Reading and writing transformers directories: config.json and (sharded) safetensors.

The safetensors reader is our own small parser over a memory map, so bf16/fp16/fp32 tensors load
into numpy (bf16 through ml_dtypes) without going through torch.
"""
from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

_DTYPES = {
    "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
INDEX_FILE = "model.safetensors.index.json"


def read_config(directory: str) -> dict:
    path = os.path.join(directory, "config.json")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: not a directory (expected a transformers model directory)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing config.json (expected a transformers model directory)")
    return read_json_object(path)


def read_json_object(path: str) -> dict:
    """A JSON file that holds one object (config.json, tokenizer_config.json, ...); errors name the file."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


class SafetensorsFile:
    """Lazy access to the tensors of one .safetensors file."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        self.header = header
        self._offset = 8 + header_len
        self._mmap = np.memmap(path, dtype=np.uint8, mode="r")

    def keys(self):
        return self.header.keys()

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        raw = self._mmap[self._offset + start: self._offset + end]
        return raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])


class TensorDict(dict):
    """Tensors already in memory, with SafetensorsFile's keys() / get() surface."""

    def get(self, name: str) -> np.ndarray:
        return self[name]


def read_torch_bin(path: str) -> TensorDict:
    """The tensors of a pickled torch state dict (bf16 widened to fp32: numpy has no bf16 of its own)."""
    try:
        import torch
    except ImportError as e:
        raise FileNotFoundError(f"{path}: a torch .bin file; install torch to read it, or convert it to "
                                "safetensors") from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    return TensorDict({name: (t.float() if t.dtype == torch.bfloat16 else t).numpy() for name, t in state.items()})


class TensorStore:
    """All tensors of an HF directory by name, across one or many safetensors files."""

    def __init__(self, directory: str):
        index_path = os.path.join(directory, INDEX_FILE)
        single = os.path.join(directory, "model.safetensors")
        if os.path.exists(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            files = {name: os.path.join(directory, fn) for name, fn in weight_map.items()}
        elif os.path.exists(single):
            files = None
            weight_map = {}
        else:
            found = [f for f in os.listdir(directory) if f.endswith(".safetensors")]
            if not found:
                bins = sorted(f for f in os.listdir(directory) if f.startswith("pytorch_model") and f.endswith(".bin"))
                if bins:
                    self._init_from_torch_bins(directory, bins)
                    return
                others = [f for f in os.listdir(directory) if f.endswith((".pt", ".pth"))]
                hint = f" (found {others}: convert them to safetensors first)" if others else ""
                raise FileNotFoundError(f"{directory}: no *.safetensors or pytorch_model*.bin weights{hint}")
            files = None
        self.directory = directory
        self._open: dict[str, SafetensorsFile] = {}
        if files is None:
            self._files = {}
            for fn in sorted(os.listdir(directory)):
                if fn.endswith(".safetensors"):
                    st = self._file(os.path.join(directory, fn))
                    self._files.update({k: st.path for k in st.keys()})
        else:
            self._files = files

    def _init_from_torch_bins(self, directory: str, bins: list[str]) -> None:
        """Original THUDM checkpoints ship pickled torch shards; reading them needs torch installed."""
        self.directory, self._open, self._files = directory, {}, {}
        self._tensors = {}
        for fn in bins:
            for name, array in read_torch_bin(os.path.join(directory, fn)).items():
                self._tensors[name] = array
                self._files[name] = fn

    def _file(self, path: str) -> SafetensorsFile:
        if path not in self._open:
            self._open[path] = SafetensorsFile(path)
        return self._open[path]

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def keys(self):
        return self._files.keys()

    def get(self, name: str) -> np.ndarray:
        if name not in self._files:
            raise KeyError(f"{self.directory}: missing weight {name!r}")
        if name in getattr(self, "_tensors", {}):
            return self._tensors[name]
        return self._file(self._files[name]).get(name)


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    """Writes one safetensors file (tensors in the order given)."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype not in _NAMES:
            raise ValueError(f"tensor {name}: dtype {arr.dtype} cannot be written to safetensors")
        blob = arr.tobytes()
        header[name] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt", **(metadata or {})}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keep tensor data 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def write_json(path: str, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
