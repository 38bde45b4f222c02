"""LoRA dropout is inverted dropout: over many step keys, the mean of the adapter's output equals its
output without dropout (peft's nn.Dropout rescales the kept inputs by 1 / (1 - p) too). Its masks come
from a counter hash (peft/dropout_mask.py): they keep 1 - p of the elements, uncorrelated between
neighbours and between keys."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.models.layers import Linear
from medjax.peft.dropout_mask import keep_mask
from medjax.peft.lora import LoRALinear, dropout_rng

P = 0.3
KEYS = 4096


def test_adapter_output_averaged_over_keys_is_the_output_without_dropout():
    rngs = nnx.Rngs(0)
    layer = LoRALinear(Linear(16, 8, axes=("embed", "mlp"), rngs=rngs), rank=4, alpha=8.0, dropout=P, rngs=rngs)
    layer.lora_b.set_value(jax.random.normal(jax.random.PRNGKey(1), layer.lora_b.shape))
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 16))
    base = layer.base(x)
    expected = np.asarray(layer(x) - base)  # no key: dropout off

    def adapter_out(key):
        with dropout_rng(key):
            return layer(x) - base

    samples = np.asarray(jax.jit(jax.vmap(adapter_out))(jax.random.split(jax.random.PRNGKey(3), KEYS)))
    assert np.abs(samples - expected).max() > 1e-2  # dropout did act
    # per key, output_o = sum_i m_i x_i W_io / (1 - p), m_i ~ Bernoulli(1 - p): variance sum_i (x_i W_io)^2 p / (1 - p)
    w = np.asarray(layer.delta())
    std_of_mean = np.sqrt(((np.asarray(x)[:, :, None] * w[None]) ** 2).sum(1) * P / (1 - P) / KEYS)
    # 5 standard errors (the keys are fixed, so no flakiness); a missing rescaling is off by p * expected,
    # 19 standard errors for the median element
    np.testing.assert_array_less(np.abs(samples.mean(0) - expected), 5 * std_of_mean)
    assert np.median(np.abs(P * expected) / std_of_mean) > 10  # the tolerance can see a missing rescaling


def test_masks_keep_one_minus_p_uncorrelated_between_neighbours_and_keys():
    shape, keep = (4, 256, 512), 0.95  # a batch of rows x features, LoRA's default p = 0.05
    key = jax.random.key(7)
    masks = [np.asarray(keep_mask(k, shape, keep)).astype(np.float64)
             for k in (key, jax.random.fold_in(key, 1), jax.random.PRNGKey(8))]
    n = masks[0].size
    for m in masks:  # 4 standard errors of a Bernoulli mean
        assert abs(m.mean() - keep) < 4 * np.sqrt(keep * (1 - keep) / n), m.mean()
    m = masks[0]
    neighbours = [(m[..., 1:], m[..., :-1]), (m[:, 1:], m[:, :-1]), (m[1:], m[:-1]),  # next feature, row, batch
                  (m[:, :, 0], m[:, :, 1])]
    others = [(masks[0], masks[1]), (masks[0], masks[2])]  # a folded key; a raw uint32 key
    for a, b in neighbours + others:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.02
    assert np.asarray(keep_mask(key, shape, keep)).tobytes() == np.asarray(masks[0] > 0).tobytes()  # deterministic


def test_a_mask_is_a_few_elementwise_ops_not_threefry():
    """What the TPU compiler was slow on: threefry over every activation element of every adapted layer."""
    jaxpr = jax.make_jaxpr(lambda k: keep_mask(k, (2, 8, 16), 0.9))(jax.random.key(0))
    names = {e.primitive.name for e in jaxpr.jaxpr.eqns}
    assert not names & {"threefry2x32", "random_bits", "rng_bit_generator"}, names
    assert len(jaxpr.jaxpr.eqns) < 60
