"""TrainCheckpoints restore: damage is moved aside, a config mismatch is an error that moves nothing."""
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from medjax.checkpoint.checksums import CHECKSUMS
from medjax.checkpoint.manager import CheckpointError, TrainCheckpoints, abstract_of

PARAMS = {"layers": {"w": jnp.arange(64 * 64, dtype=jnp.float32).reshape(64, 64)}, "norm": jnp.ones((64,))}


def matrices(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def train_item(params):  # the trainer's optimizer layout: a chain, a masked weight decay (empty nodes)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, mask=matrices))
    return {"opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32)}


def save_steps(directory, steps, params=PARAMS, keep=5, async_save=True):
    ckpts = TrainCheckpoints(directory, keep=keep, async_save=async_save)  # checksums: once each save finished
    for step in steps:
        ckpts.save(step, shifted(params, step), train_item(params), {"step": step})
    ckpts.close()


def shifted(params, value):
    return {"layers": {"w": params["layers"]["w"] + value}, "norm": params["norm"]}


def restore(directory, params=PARAMS, **kw):
    return TrainCheckpoints(directory).restore_latest(abstract_of(params), abstract_of(train_item(params)), **kw)


def entries(directory):
    return sorted(os.listdir(directory))


@pytest.mark.parametrize("keep, async_save", [(5, True), (5, False), (1, True)])
def test_every_kept_step_gets_checksums(tmp_path, keep, async_save):
    save_steps(str(tmp_path), [1, 2, 3], keep=keep, async_save=async_save)
    kept = entries(tmp_path)
    assert kept == ["1", "2", "3"][-keep:]
    assert all(os.path.exists(tmp_path / s / CHECKSUMS) for s in kept)


def test_changed_shape_is_an_error_naming_the_key_and_moves_nothing(tmp_path):
    save_steps(str(tmp_path), [1, 2])
    before = entries(tmp_path)
    wider = {"layers": {"w": jnp.zeros((64, 128))}, "norm": jnp.ones((64,))}
    with pytest.raises(CheckpointError) as e:
        restore(str(tmp_path), wider, mismatch_hint="see model_config.json")
    msg = str(e.value)
    assert "params key 'layers.w': saved shape (64, 64), configured shape (64, 128)" in msg
    assert "train key 'opt_state.1.0.mu.layers.w'" in msg and msg.endswith("see model_config.json")
    assert entries(tmp_path) == before  # every step still there, nothing moved aside


def test_missing_key_is_an_error_too(tmp_path):
    save_steps(str(tmp_path), [1])
    more = {**PARAMS, "lora": jnp.zeros((4, 64))}
    with pytest.raises(CheckpointError, match="params key 'lora': saved nothing, configured shape \\(4, 64\\)"):
        restore(str(tmp_path), more)
    assert entries(tmp_path) == ["1"]


def test_flipped_byte_fails_its_checksum_and_the_previous_step_restores(tmp_path, capsys):
    save_steps(str(tmp_path), [1, 2])
    data = max(glob.glob(str(tmp_path / "2" / "params" / "**" / "d" / "*"), recursive=True), key=os.path.getsize)
    raw = bytearray(open(data, "rb").read())
    raw[100] ^= 1  # inside the compressed array: Orbax alone would restore wrong numbers without a word
    open(data, "wb").write(bytes(raw))
    step, params, _, meta = restore(str(tmp_path))
    assert step == 1 and meta["step"] == 1
    np.testing.assert_array_equal(params["layers"]["w"], PARAMS["layers"]["w"] + 1)
    assert "sha256" in capsys.readouterr().out
    assert [d for d in entries(tmp_path) if d.startswith("corrupt-2-")] and "1" in entries(tmp_path)


def test_no_restorable_step_stops_and_never_starts_fresh(tmp_path):
    save_steps(str(tmp_path), [1])
    for f in glob.glob(str(tmp_path / "1" / "params" / "**" / "*"), recursive=True):
        if os.path.isfile(f):
            open(f, "w").close()
    with pytest.raises(CheckpointError, match="no checkpoint in .* restores"):
        restore(str(tmp_path))
    with pytest.raises(CheckpointError, match="holds only damaged checkpoints"):  # the rerun as well
        restore(str(tmp_path))


def test_a_step_without_checksums_still_restores(tmp_path):
    save_steps(str(tmp_path), [1])
    os.remove(tmp_path / "1" / CHECKSUMS)  # killed between the save and its checksums
    assert restore(str(tmp_path))[0] == 1
