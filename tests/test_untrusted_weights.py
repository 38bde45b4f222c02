"""Weights from an untrusted directory: corrupt safetensors, indexes that point outside the
model directory, and pickled .bin files are refused with errors that name the file."""
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from medjax.checkpoint import hf_io
from medjax.checkpoint.hf_io import SafetensorsFile, TensorStore, WeightFileError, read_torch_bin, write_safetensors
from medjax.peft.adapter_io import adapter_weights

TENSORS = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(2, np.int8)}


def _valid(tmp_path, name="model.safetensors") -> str:
    path = str(tmp_path / name)
    write_safetensors(path, TENSORS)
    return path


def _rewrite(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _header(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _with_header(path: str, header: dict, body: bytes) -> str:
    encoded = json.dumps(header).encode()
    return _rewrite(path, struct.pack("<Q", len(encoded)) + encoded + body)


def test_a_valid_file_still_reads(tmp_path):
    f = SafetensorsFile(_valid(tmp_path))
    np.testing.assert_array_equal(f.get("w"), TENSORS["w"])
    np.testing.assert_array_equal(f.get("b"), TENSORS["b"])


def test_truncated_file_names_the_file_and_the_tensor(tmp_path):
    path = _valid(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    _rewrite(path, data[:-1])  # 'b' is stored last: its bytes run past the end now
    with pytest.raises(WeightFileError, match=r"model\.safetensors: tensor 'b': data_offsets .* outside"):
        SafetensorsFile(path)


def test_file_shorter_than_the_length_prefix(tmp_path):
    path = _rewrite(str(tmp_path / "tiny.safetensors"), b"\x01\x02\x03\x04")
    with pytest.raises(WeightFileError, match=r"tiny\.safetensors: 4 bytes, too short"):
        SafetensorsFile(path)


def test_huge_header_length_is_refused_before_reading(tmp_path):
    path = _valid(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    _rewrite(path, struct.pack("<Q", 2 ** 40) + data[8:])
    with pytest.raises(WeightFileError, match=r"model\.safetensors: header length 1099511627776 does not fit"):
        SafetensorsFile(path)


def test_header_that_is_not_json(tmp_path):
    path = _rewrite(str(tmp_path / "x.safetensors"), struct.pack("<Q", 4) + b"\xff\xfe{]")
    with pytest.raises(WeightFileError, match=r"x\.safetensors: the safetensors header is not valid JSON"):
        SafetensorsFile(path)


def test_shape_that_disagrees_with_the_byte_range(tmp_path):
    header, body = _header(_valid(tmp_path))
    header["w"]["shape"] = [4, 4]  # 64 bytes claimed, 48 stored
    path = _with_header(str(tmp_path / "model.safetensors"), header, body)
    with pytest.raises(WeightFileError, match=r"tensor 'w': F32 \[4, 4\] needs 64 bytes, the file gives 48"):
        SafetensorsFile(path)


@pytest.mark.parametrize("offsets", [[-8, 40], [40, 8], [0, 2 ** 63], "0-48"])
def test_offsets_outside_the_data_region(tmp_path, offsets):
    header, body = _header(_valid(tmp_path))
    header["w"]["data_offsets"] = offsets
    path = _with_header(str(tmp_path / "model.safetensors"), header, body)
    with pytest.raises(WeightFileError, match=r"model\.safetensors: tensor 'w': data_offsets"):
        SafetensorsFile(path)


def _sharded(tmp_path, target: str) -> str:
    model = tmp_path / "model"
    model.mkdir()
    (model / hf_io.INDEX_FILE).write_text(json.dumps({"weight_map": {"w": target, "b": target}}))
    return str(model)


@pytest.mark.parametrize("escape", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors"])
def test_index_may_not_point_outside_the_model_directory(tmp_path, escape):
    outside = _valid(tmp_path, "outside.safetensors")
    target = outside if escape == "ABSOLUTE" else escape
    model = _sharded(tmp_path, target)
    with pytest.raises(WeightFileError, match=r"index\.json: tensor '\w' names the file .*inside the model directory"):
        TensorStore(model)


def test_index_naming_a_missing_shard(tmp_path):
    model = _sharded(tmp_path, "model-00001-of-00002.safetensors")
    with pytest.raises(WeightFileError, match=r"index\.json: tensor 'w' is in model-00001-of-00002\.safetensors, "
                                              r"which is missing"):
        TensorStore(model)


def test_index_with_plain_shard_names_reads(tmp_path):
    model = _sharded(tmp_path, "model-00001-of-00001.safetensors")
    _valid(tmp_path / "model", "model-00001-of-00001.safetensors")
    np.testing.assert_array_equal(TensorStore(model).get("w"), TENSORS["w"])


class _RunsCode:
    """A pickle that creates a directory when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _malicious_bin(path, marker) -> None:
    with open(path, "wb") as f:
        pickle.dump({"w": _RunsCode(str(marker))}, f, protocol=2)


def test_a_pickle_that_runs_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    _malicious_bin(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(WeightFileError, match=r"pytorch_model\.bin: not a loadable weights-only torch state dict"):
        TensorStore(str(tmp_path))
    assert not marker.exists()


def test_safetensors_wins_over_a_bin_in_the_same_directory(tmp_path, monkeypatch):
    _valid(tmp_path)
    _malicious_bin(tmp_path / "pytorch_model.bin", tmp_path / "pwned")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    _valid(adapter, "adapter_model.safetensors")
    _malicious_bin(adapter / "adapter_model.bin", tmp_path / "pwned")

    def no_pickles(*args, **kwargs):
        raise AssertionError("a .bin was unpickled although safetensors weights are there")

    monkeypatch.setattr(torch, "load", no_pickles)
    np.testing.assert_array_equal(TensorStore(str(tmp_path)).get("w"), TENSORS["w"])
    np.testing.assert_array_equal(adapter_weights(str(adapter)).get("w"), TENSORS["w"])


def test_a_bin_alone_reads_through_the_weights_only_loader(tmp_path):
    torch.save({"w": torch.arange(4.0), "h": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "pytorch_model.bin")
    store = TensorStore(str(tmp_path))
    np.testing.assert_array_equal(store.get("w"), np.arange(4.0, dtype=np.float32))
    assert store.get("h").dtype == np.float32


def test_torch_older_than_2_6_is_not_trusted_with_pickles(tmp_path, monkeypatch):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "pytorch_model.bin")
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(WeightFileError, match=r"pytorch_model\.bin: reading pickled \.bin weights safely needs "
                                              r"torch >= 2\.6 \(found 2\.5\.1\+cpu\)"):
        read_torch_bin(str(tmp_path / "pytorch_model.bin"))


def test_a_bin_that_is_no_state_dict(tmp_path):
    torch.save([torch.ones(2)], tmp_path / "pytorch_model.bin")
    with pytest.raises(WeightFileError, match=r"pytorch_model\.bin: expected a dict of tensor name -> tensor"):
        read_torch_bin(str(tmp_path / "pytorch_model.bin"))
