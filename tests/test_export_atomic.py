"""Exports are whole or absent: --overwrite replaces a directory without leaving stale files, an
interrupted export keeps the previous one, bad arguments create nothing, and hf: weights are written in
shards streamed off the device one layer at a time."""
import json
import os
import tracemalloc

import jax
import numpy as np
import pytest
import transformers
from flax import nnx

import medjax
from medjax.api import LM
from medjax.checkpoint.atomic_dir import check_destination, replacing_dir
from medjax.checkpoint.conversion import convert
from medjax.checkpoint.export_stream import HFTensors
from medjax.checkpoint.hf_model import save_hf_model
from medjax.models import llama
from medjax.models.config import ModelConfig
from medjax.models.registry import FAMILY_MODULES, family_module
from medjax.peft.config import PeftSettings
from tests.glm_configs import GLM_CONFIGS
from tests.hf_fixtures import make_hf_llama, torch_logits

IDS = np.array([[1, 5, 9, 33, 77, 2]])


def _files(directory):
    return sorted(os.listdir(directory))


def _hf_logits(directory):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager").float().eval()
    return torch_logits(model, IDS)


def _leftovers(directory):
    parent = os.path.dirname(os.path.realpath(directory))
    return [f for f in os.listdir(parent) if ".medjax-" in f]


@pytest.fixture(scope="module")
def new_src(tmp_path_factory):
    """The model being exported: (hf dir, its transformers logits)."""
    d = str(tmp_path_factory.mktemp("new_src"))
    return d, torch_logits(make_hf_llama(d, seed=2), IDS)


@pytest.fixture
def old_export(tmp_path):
    """A previous export in transformers' sharded layout (index + 2 shards) with a tokenizer.json that
    does not fit the new model: (dir, its logits)."""
    d = str(tmp_path / "export")
    logits = torch_logits(make_hf_llama(d, seed=1, max_shard_size="80KB"), IDS)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        f.write("{stale")
    assert "model.safetensors.index.json" in _files(d) and "model-00002-of-00002.safetensors" in _files(d)
    return d, logits


def test_overwrite_replaces_a_sharded_export_without_stale_files(new_src, old_export):
    src, new_logits = new_src
    dst, _ = old_export
    before = _files(dst)
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(f"hf:{src}", f"hf:{dst}")
    assert _files(dst) == before
    convert(f"hf:{src}", f"hf:{dst}", overwrite=True)
    assert _files(dst) == ["config.json", "generation_config.json", "model.safetensors"]
    np.testing.assert_allclose(medjax.load(f"hf:{dst}").logits(IDS), new_logits, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(_hf_logits(dst), new_logits)
    assert not _leftovers(dst)


@pytest.mark.parametrize("where", ["second shard", "last file"])
def test_an_interrupted_export_keeps_the_previous_one(new_src, old_export, monkeypatch, where):
    src, _ = new_src
    dst, old_logits = old_export
    os.remove(os.path.join(dst, "tokenizer.json"))  # the previous export, loadable
    before = {f: open(os.path.join(dst, f), "rb").read() for f in _files(dst)}
    lm = medjax.load(f"hf:{src}")
    if where == "second shard":
        real_read, calls = HFTensors.read, []

        def read(self, name):
            calls.append(name)
            if len(calls) == 12:  # midway: the first shards are on disk by now
                raise KeyboardInterrupt
            return real_read(self, name)

        monkeypatch.setattr(HFTensors, "read", read)
    else:
        def write_json(path, obj):
            raise OSError(f"{path}: disk full")

        monkeypatch.setattr("medjax.checkpoint.hf_model.write_json", write_json)
    with pytest.raises((KeyboardInterrupt, OSError)):
        lm.save(f"hf:{dst}", overwrite=True, max_shard_size=40_000)
    assert {f: open(os.path.join(dst, f), "rb").read() for f in _files(dst)} == before
    assert not _leftovers(dst)
    np.testing.assert_array_equal(_hf_logits(dst), old_logits)


@pytest.fixture(scope="module")
def tiny_lm():
    cfg = ModelConfig(family="llama", vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2,
                      num_heads=4, num_kv_heads=2)
    return LM(llama.build(cfg, nnx.Rngs(0)))


def test_the_library_writer_replaces_its_own_directory(tiny_lm, tmp_path):
    """save_hf_model (a stage's hf/ on a rerun) replaces the directory whole; the overwrite check
    belongs to LM.save and convert."""
    d = tmp_path / "hf"
    d.mkdir()
    (d / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    save_hf_model(tiny_lm.model, str(d))
    assert _files(d) == ["config.json", "generation_config.json", "model.safetensors"]
    np.testing.assert_array_equal(medjax.load(f"hf:{d}").logits(IDS), tiny_lm.logits(IDS))


@pytest.fixture(scope="module")
def plain_ckpt(tiny_lm, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("plain_ckpt"))
    tiny_lm.save(f"ckpt:{d}")
    return d


class _FailingTokenizer:
    vocab_size = 0

    def save(self, directory):
        raise OSError(f"{directory}: disk full")


def test_ckpt_export_is_atomic_and_drops_a_stale_peft_config(tiny_lm, tmp_path):
    dst = str(tmp_path / "ckpt")
    tiny_lm.save(f"ckpt:{dst}")
    changed = LM(llama.build(tiny_lm.config, nnx.Rngs(1)), _FailingTokenizer())
    with pytest.raises(OSError, match="disk full"):  # the tokenizer is written after the params
        changed.save(f"ckpt:{dst}", overwrite=True)
    assert not _leftovers(dst)
    np.testing.assert_array_equal(medjax.load(f"ckpt:{dst}").logits(IDS), tiny_lm.logits(IDS))
    PeftSettings(method="lora", rank=2, targets="attn/q").save(dst)  # as if left by an adapter export
    changed.tokenizer = None
    changed.save(f"ckpt:{dst}", overwrite=True)
    assert "peft_config.json" not in _files(dst)
    np.testing.assert_array_equal(medjax.load(f"ckpt:{dst}").logits(IDS), changed.logits(IDS))


def test_sharded_export_loads_in_transformers_with_identical_logits(new_src, tmp_path):
    src, new_logits = new_src
    lm = medjax.load(f"hf:{src}")
    lm.save(f"hf:{tmp_path}/out", max_shard_size=20_000)
    files = _files(tmp_path / "out")
    shards = [f for f in files if f.startswith("model-")]
    assert len(shards) >= 4 and "model.safetensors.index.json" in files and "model.safetensors" not in files
    with open(tmp_path / "out" / "model.safetensors.index.json") as f:
        index = json.load(f)
    assert sorted(set(index["weight_map"].values())) == shards
    for shard in shards:  # at most the maximum, or one tensor larger than it alone
        from safetensors import safe_open

        with safe_open(str(tmp_path / "out" / shard), "np") as st:
            sizes = [st.get_tensor(k).nbytes for k in st.keys()]
        assert sum(sizes) <= 20_000 or len(sizes) == 1
    np.testing.assert_array_equal(_hf_logits(tmp_path / "out"), new_logits)
    np.testing.assert_array_equal(medjax.load(f"hf:{tmp_path}/out").logits(IDS), lm.logits(IDS))


def _tiny_config(family: str) -> ModelConfig:
    """A tiny config of every registered family (GLM ones from tests/glm_configs.py)."""
    if family in GLM_CONFIGS:
        return GLM_CONFIGS[family]()
    return ModelConfig(family=family, vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=3,
                       num_heads=4, num_kv_heads=4, attention_bias=family == "qwen2")


@pytest.mark.parametrize("family", sorted(set(FAMILY_MODULES) - {"glm_v1"} | set(GLM_CONFIGS)))
def test_streamed_tensors_equal_the_family_export(family):
    """Streaming runs each family's export_params one layer at a time; it must give what the whole
    host copy gives, for every family (a new one whose export is not layer by layer fails here)."""
    cfg = _tiny_config(family)
    module = family_module(cfg.family)
    model = module.build(cfg, nnx.Rngs(0))
    expected = module.export_params(jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model))), cfg)
    tensors = HFTensors(model, np.dtype(np.float32))
    assert sorted(s.name for s in tensors.specs) == sorted(expected)
    for spec in tensors.specs:
        value = tensors.read(spec.name)
        assert value.shape == spec.shape
        np.testing.assert_array_equal(value, expected[spec.name], err_msg=spec.name)


def test_export_holds_about_one_layer_on_the_host(tmp_path):
    """8 layers of 160 KB: the whole model (1.3 MB) never sits on the host, let alone three copies."""
    cfg = ModelConfig(family="llama", vocab_size=128, hidden_size=64, intermediate_size=128, num_layers=8,
                      num_heads=4, num_kv_heads=4)
    model = llama.build(cfg, nnx.Rngs(0))
    model_bytes = sum(a.nbytes for a in jax.tree.leaves(nnx.state(model)))
    save_hf_model(model, str(tmp_path / "warm"))  # compiles the per-layer slices outside the measurement
    tracemalloc.start()
    try:
        save_hf_model(model, str(tmp_path / "out"), max_shard_size=300_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len([f for f in _files(tmp_path / "out") if f.startswith("model-")]) > 2
    assert peak < model_bytes / 3, (peak, model_bytes)


@pytest.mark.parametrize("kwargs, error", [
    (dict(dtype="bf16"), r"--dtype='bf16': expected one of float32, bfloat16, float16"),
    (dict(dst="safetensors:{out}"), "model spec"),
    (dict(merge=True), "has no adapters to merge"),
    (dict(src="ckpt:{ckpt}", merge=True), "has no adapters to merge"),
    (dict(dst="peft:{out}"), "has no adapters to export"),
    (dict(base="hf:{src}"), "only a --src=peft:DIR adapter takes a base model"),
    (dict(src="peft:{src}"), "needs --base=hf:DIR"),
    (dict(src="peft:{src}", base="ckpt:{src}"), "--base=ckpt:.*expected hf:DIR"),
    (dict(dst="ckpt:{out}", dtype="float16"), "keeps the model's param_dtype"),
])
def test_bad_arguments_create_nothing(new_src, plain_ckpt, tmp_path, kwargs, error):
    src, _ = new_src
    out = str(tmp_path / "out")
    args = {"src": f"hf:{src}", "dst": f"hf:{out}", **kwargs}
    args = {k: v.format(src=src, out=out, ckpt=plain_ckpt) if isinstance(v, str) else v for k, v in args.items()}
    with pytest.raises(ValueError, match=error):
        convert(**args)
    assert _files(tmp_path) == []


def test_replacing_dir_cleans_up_after_a_killed_export(tmp_path):
    dst = str(tmp_path / "export")
    os.makedirs(os.path.join(tmp_path, ".export.medjax-partial"))  # killed while writing
    os.makedirs(os.path.join(tmp_path, ".export.medjax-old"))  # killed between the two renames
    open(os.path.join(tmp_path, ".export.medjax-old", "config.json"), "w").close()
    with pytest.raises(FileExistsError, match="not empty"):
        with replacing_dir(dst):
            check_destination(dst, overwrite=False)  # the old export is back in place
    assert _files(tmp_path) == ["export"] and _files(dst) == ["config.json"]
    with replacing_dir(dst) as tmp:
        open(os.path.join(tmp, "model.safetensors"), "w").close()
    assert _files(tmp_path) == ["export"] and _files(dst) == ["model.safetensors"]
    open(tmp_path / "file", "w").close()
    with pytest.raises(FileExistsError, match="not a directory"):
        check_destination(str(tmp_path / "file"), overwrite=True)
