"""QLoRA's storage claim: an NF4 layer holds at most 0.55 bytes per weight (4-bit codes, one int8
absmax per 64 weights, one float32 scale per 256 absmax values: 0.516), counted from every array the
quantised layer keeps, so a full-precision copy of the kernel left behind would show."""
import jax
import numpy as np
from flax import nnx

from medjax.models.layers import Linear
from medjax.peft.quantized import QuantizedLinear


def test_nf4_layer_stores_at_most_0_55_bytes_per_weight():
    fan_in, fan_out = 4096, 1024  # a LLaMA-7B projection's input width
    layer = QuantizedLinear(Linear(fan_in, fan_out, axes=("embed", "mlp"), rngs=nnx.Rngs(0)), "nf4")
    stored = sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(nnx.state(layer)))
    assert stored / (fan_in * fan_out) <= 0.55, f"{stored / (fan_in * fan_out):.3f} bytes per weight"
