"""LoRA dropout is inverted dropout: over many step keys, the mean of the adapter's output equals its
output without dropout (peft's nn.Dropout rescales the kept inputs by 1 / (1 - p) too)."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medjax.models.layers import Linear
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
