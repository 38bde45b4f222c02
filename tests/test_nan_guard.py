"""The NaN guard names a checkpoint whose weights are known good and moves the others aside."""
import os

import jax.numpy as jnp
import numpy as np

from medjax.checkpoint.manager import TrainCheckpoints
from medjax.train.nan_guard import NONFINITE, NonFiniteLoss, all_finite, loss_not_finite, weights_not_finite


def checkpoints(directory, steps):
    ckpts = TrainCheckpoints(directory, keep=5)
    for step in steps:
        ckpts.save(step, {"w": jnp.full((4,), float(step))}, {"step": jnp.asarray(step)}, {"step": step})
    return ckpts


def test_a_nan_loss_at_step_n_condemns_the_checkpoint_of_step_n_minus_1(tmp_path):
    # the loss computed at step 3 is the loss of the weights saved at step 2
    ckpts = checkpoints(str(tmp_path), [1, 2])
    err = loss_not_finite(ckpts, "cp", float("nan"), 3)
    assert isinstance(err, NonFiniteLoss)
    assert f"Last good checkpoint: {tmp_path / '1'};" in str(err) and "loss became nan at step 3" in str(err)
    assert ckpts.latest_step() == 1
    assert sorted(d.split("-")[0] for d in os.listdir(tmp_path)) == ["1", NONFINITE]
    ckpts.close()


def test_a_late_read_loss_condemns_every_later_checkpoint_too(tmp_path):
    # a loop that reads metrics a step late may have saved step 3 before seeing step 3's loss
    ckpts = checkpoints(str(tmp_path), [1, 2, 3])
    err = loss_not_finite(ckpts, "cp", float("inf"), 3)
    assert f"{tmp_path / '1'};" in str(err) and ckpts.all_steps() == [1]
    ckpts.close()


def test_non_finite_weights_keep_the_checkpoints_before_them(tmp_path):
    ckpts = checkpoints(str(tmp_path), [1, 2])
    err = weights_not_finite(ckpts, "cp", 3)
    assert f"Last good checkpoint: {tmp_path / '2'}" in str(err) and ckpts.all_steps() == [1, 2]
    ckpts.close()


def test_no_good_checkpoint_says_so(tmp_path):
    ckpts = checkpoints(str(tmp_path), [1])
    assert "Last good checkpoint: none" in str(loss_not_finite(ckpts, "cp", float("nan"), 2))
    ckpts.close()


def test_all_finite_looks_at_floating_leaves_only():
    assert bool(all_finite({"a": jnp.ones(3), "count": jnp.asarray(7, jnp.int32)}))
    assert not bool(all_finite({"a": jnp.ones(3), "b": {"c": jnp.asarray([1.0, np.inf])}}))
    assert not bool(all_finite((jnp.asarray([np.nan], jnp.bfloat16),)))
