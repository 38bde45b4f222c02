"""Reference models: precomputed == online copy for a whole run, base == copy under LoRA, one base
copy in memory under LoRA, and the precompute pass resumes and refuses changed inputs."""
import os

import jax
import numpy as np
import pytest

from medjax.train.pipeline import run
from medjax.train.reference import PRECOMPUTED_DIR
from test_alignment_support import assert_same_run, metrics, tiny_ha


def test_precomputed_reference_gives_the_same_losses_as_an_online_copy(tmp_path):
    run(tiny_ha("copy"), str(tmp_path / "copy"))
    run(tiny_ha("precomputed"), str(tmp_path / "precomputed"))
    online, precomputed = metrics(str(tmp_path / "copy")), metrics(str(tmp_path / "precomputed"))
    assert_same_run(online, precomputed)
    assert next(r for r in online if "loss" in r)["loss"] == pytest.approx(np.log(2), abs=1e-6)
    assert any("eval_pref_accuracy" in r for r in online)
    files = os.listdir(os.path.join(tmp_path, "precomputed", "ha", PRECOMPUTED_DIR))
    assert {"header.json", "train.p0.f32", "train.p0.crc"} <= set(files)


def test_precompute_pass_resumes_after_a_crash_and_refuses_changed_data(tmp_path):
    from medjax.assets import default_paths
    from medjax.data.config import data_config
    from medjax.data.pipeline import build_train_iterator
    from medjax.data.tokenizer import load_tokenizer
    from medjax.parallel.mesh import make_mesh
    from medjax.train.model_init import scratch_model
    from medjax.train.reference import precompute_reference

    c = tiny_ha("precomputed")
    tokenizer = load_tokenizer(default_paths()["tokenizer"])
    mesh = make_mesh()
    model = scratch_model(c.model, tokenizer, 0, mesh)
    data = data_config(train=default_paths()["pref_train"])

    def pass_over(steps, seed=0, stage_dir=str(tmp_path)):
        new_it = lambda: build_train_iterator(data, tokenizer, kind="pref", seq_len=64, batch_size=4,  # noqa: E731
                                              seed=seed, model_family="llama")
        return precompute_reference(c.ha, stage_dir, model, new_it, [], steps, 4, mesh)

    pass_over(2)
    with open(os.path.join(tmp_path, PRECOMPUTED_DIR, "train.p0.f32"), "ab") as f:
        f.write(b"\x00" * 12)  # half a step written when the pass was killed
    resumed = pass_over(5)
    fresh = pass_over(5, stage_dir=str(tmp_path / "fresh"))
    assert resumed.logps.shape == (5, 4, 2)
    np.testing.assert_array_equal(resumed.logps, fresh.logps)
    np.testing.assert_array_equal(resumed.checksums, fresh.checksums)
    with pytest.raises(ValueError, match="header.json"):
        pass_over(5, seed=1)
    batch = next(build_train_iterator(data, tokenizer, kind="pref", seq_len=64, batch_size=4, seed=1,
                                      model_family="llama"))
    with pytest.raises(ValueError, match="step 1: the training batch differs"):
        resumed.attach(1, batch)


def _held_bytes_during_run(c, workdir) -> tuple[list[dict], int]:
    """(metrics, peak bytes of the live device arrays the run created, sampled whenever it places a batch)."""
    import gc

    import medjax.train.evaluation as evaluation
    import medjax.train.feed as feed

    gc.collect()
    before = {id(x) for x in jax.live_arrays()}
    peak = [0]
    place_rows, place = feed.put_process_batch, evaluation.put_batch

    def sample():
        peak[0] = max(peak[0], sum(x.nbytes for x in jax.live_arrays() if id(x) not in before))

    def sampling_put_process_batch(batch, mesh, batch_size):
        sample()
        return place_rows(batch, mesh, batch_size)

    def sampling_put_batch(batch, mesh):
        sample()
        return place(batch, mesh)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(feed, "put_process_batch", sampling_put_process_batch)  # the training batches
        mp.setattr(evaluation, "put_batch", sampling_put_batch)  # the held-out ones
        run(c, workdir)
    return metrics(workdir), peak[0]


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    """LoRA DPO with reference=base and reference=copy: (metrics, peak bytes) of each."""
    return {reference: _held_bytes_during_run(tiny_ha(reference, lora=True, steps=3),
                                              str(tmp_path_factory.mktemp(reference)))
            for reference in ("base", "copy")}


def test_lora_base_reference_equals_copy_reference(lora_runs):
    (base, _), (copy, _) = lora_runs["base"], lora_runs["copy"]
    assert_same_run(copy, base)
    first = next(r for r in base if r["step"] == 1 and "loss" in r)
    assert first["loss"] == pytest.approx(np.log(2), abs=1e-6)  # adapters start at zero: policy == reference
    assert next(r for r in base if r["step"] == 3 and "loss" in r)["loss"] != first["loss"]


def test_lora_dpo_holds_one_copy_of_the_base_weights(lora_runs):
    from flax import nnx

    from medjax.assets import default_paths
    from medjax.data.tokenizer import load_tokenizer
    from medjax.parallel.mesh import make_mesh
    from medjax.train.model_init import scratch_model

    c = tiny_ha("base")
    base = scratch_model(c.model, load_tokenizer(default_paths()["tokenizer"]), 0, make_mesh())
    base_bytes = sum(x.nbytes for x in jax.tree.leaves(nnx.state(base)))
    held_base, held_copy = lora_runs["base"][1], lora_runs["copy"][1]
    assert base_bytes < held_base < 1.5 * base_bytes, (held_base, base_bytes)
    assert held_copy > 1.9 * base_bytes, (held_copy, base_bytes)
