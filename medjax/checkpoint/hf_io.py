"""Reading and writing transformers directories: config.json and (sharded) safetensors.

The safetensors reader is our own small parser over a memory map, so bf16/fp16/fp32 tensors load
into numpy (bf16 through ml_dtypes) without going through torch. Weights are untrusted input: a
file whose header or tensor offsets do not fit it, an index naming files outside its directory, a
pickle the weights-only loader refuses all raise `WeightFileError` naming the file (and tensor).
"""
from __future__ import annotations

import json
import math
import os
import re
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
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 (byte {raw[e.start]:#04x} at offset {e.start})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of over 4300 digits, or deep nesting
        raise ValueError(f"{path}: invalid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


class WeightFileError(ValueError):
    """A weights file or index that is malformed or unsafe; the message names the file (and tensor)."""


# The dtypes safetensors defines, with their sizes, so that even a tensor we cannot load is checked.
_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
             "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
_MAX_HEADER = 100 << 20  # the safetensors library's own limit: a larger header is corrupt


class SafetensorsFile:
    """Lazy access to the tensors of one .safetensors file, checked on open: the header must fit the
    file and every tensor's byte range must lie inside the data region and match its dtype and shape."""

    def __init__(self, path: str):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightFileError(f"{path}: {size} bytes, too short for a safetensors file")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size - 8, _MAX_HEADER):
                raise WeightFileError(f"{path}: header length {header_len} does not fit the file "
                                      f"({size} bytes); truncated or not a safetensors file")
            raw = f.read(header_len)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise WeightFileError(f"{path}: the safetensors header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise WeightFileError(f"{path}: the safetensors header is not a JSON object")
        header.pop("__metadata__", None)
        self._offset = 8 + header_len
        for name, info in header.items():
            _check_entry(path, name, info, size - self._offset)
        self.header = header
        self._mmap = np.memmap(path, dtype=np.uint8, mode="r")

    def keys(self):
        return self.header.keys()

    def get(self, name: str) -> np.ndarray:
        if name not in self.header:
            raise KeyError(f"{self.path}: no tensor {name!r}")
        info = self.header[name]
        if info["dtype"] not in _DTYPES:
            raise WeightFileError(f"{self.path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        raw = self._mmap[self._offset + start: self._offset + end]
        return raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])


def _check_entry(path: str, name: str, info, data_len: int) -> None:
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise WeightFileError(f"{where}: header entry must hold dtype, shape and data_offsets, got {info!r:.200}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _ITEMSIZE:
        raise WeightFileError(f"{where}: unknown dtype {dtype!r:.50}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise WeightFileError(f"{where}: shape must be a list of non-negative integers, got {shape!r:.200}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len):
        raise WeightFileError(f"{where}: data_offsets {offsets!r:.200} outside the data region "
                              f"[0, {data_len}]; truncated file?")
    expected = math.prod(shape) * _ITEMSIZE[dtype]
    if offsets[1] - offsets[0] != expected:
        raise WeightFileError(f"{where}: {dtype} {shape} needs {expected} bytes, the file gives "
                              f"{offsets[1] - offsets[0]}")


class TensorDict(dict):
    """Tensors already in memory, with SafetensorsFile's keys() / get() surface."""

    def get(self, name: str) -> np.ndarray:
        return self[name]


def read_torch_bin(path: str) -> TensorDict:
    """The tensors of a pickled torch state dict (bf16 widened to fp32: numpy has no bf16 of its own).

    Only through torch's weights-only unpickler, which before torch 2.6 could still be made to run
    code (CVE-2025-32434): older torch is refused rather than trusted with a pickle."""
    try:
        import torch
    except ImportError as e:
        raise FileNotFoundError(f"{path}: a torch .bin file; install torch to read it, or convert it to "
                                "safetensors") from e
    version = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    if version < (2, 6):
        raise WeightFileError(f"{path}: reading pickled .bin weights safely needs torch >= 2.6 (found "
                              f"{torch.__version__}); upgrade torch or convert the file to safetensors")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the unpickler raises many kinds; all mean "not loadable"
        raise WeightFileError(f"{path}: not a loadable weights-only torch state dict "
                              f"({type(e).__name__}: {str(e)[:300]})") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise WeightFileError(f"{path}: expected a dict of tensor name -> tensor")
    return TensorDict({name: (t.float() if t.dtype == torch.bfloat16 else t).numpy() for name, t in state.items()})


def _weight_map(index_path: str) -> dict[str, str]:
    """An index's tensor -> shard map; shards must be plain files of the index's own directory."""
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise WeightFileError(f"{index_path}: 'weight_map' must be an object of tensor name -> file")
    directory = os.path.dirname(index_path)
    for name, fn in weight_map.items():
        # Lexical check only: HF cache snapshots hold symlinks into ../../blobs, which are fine.
        if not isinstance(fn, str) or fn in ("", ".", "..") or os.path.basename(fn) != fn:
            raise WeightFileError(f"{index_path}: tensor {name!r} names the file {fn!r}; shards must be "
                                  "file names inside the model directory")
        if not os.path.isfile(os.path.join(directory, fn)):
            raise WeightFileError(f"{index_path}: tensor {name!r} is in {fn}, which is missing from {directory}")
    return weight_map


class TensorStore:
    """All tensors of an HF directory by name, across one or many safetensors files."""

    def __init__(self, directory: str):
        index_path = os.path.join(directory, INDEX_FILE)
        single = os.path.join(directory, "model.safetensors")
        if os.path.exists(index_path):
            files = {name: os.path.join(directory, fn) for name, fn in _weight_map(index_path).items()}
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
