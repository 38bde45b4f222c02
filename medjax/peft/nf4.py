"""4-bit NormalFloat (NF4): the QLoRA data type.

The 16 code values are the published NF4 table of Dettmers et al., "QLoRA: Efficient Finetuning of
Quantized LLMs" (2023), Appendix E, identical to `bitsandbytes.functional` (`create_normal_map`):
quantiles of N(0, 1) rescaled to [-1, 1], with an exact zero. Weights are quantised in blocks of 64
against each block's absolute maximum ("absmax"); the absmax scales are themselves quantised
("double quantisation", see quantized.py).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

NF4_CODE_BOOK = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=np.float32)

# decision thresholds: a normalised value goes to the nearest code
_MIDPOINTS = (NF4_CODE_BOOK[1:] + NF4_CODE_BOOK[:-1]) / 2


def nf4_codes(normalised):
    """Index (0..15, uint8) of the nearest code value for each element of `normalised` in [-1, 1]."""
    return jnp.searchsorted(jnp.asarray(_MIDPOINTS), normalised.astype(jnp.float32)).astype(jnp.uint8)


def nf4_values(codes):
    """Code indices -> float32 code values, by a select tree on the 4 bits: elementwise, so XLA fuses it
    into the dequantisation. (A gather from the 16-value table made the TPU compiler keep index arrays
    padded to 128 lanes: 11 GiB of temporaries for one llama2-7b MLP kernel.)"""
    level = [jnp.float32(v) for v in NF4_CODE_BOOK]
    for bit in range(4):
        is_set = ((codes >> bit) & 1) == 1
        level = [jnp.where(is_set, one, zero) for zero, one in zip(level[::2], level[1::2])]
    return jnp.broadcast_to(level[0], codes.shape)


def pack_nibbles(codes_N):
    """Two 4-bit codes per byte (even index in the high nibble); N must be even."""
    pairs = codes_N.reshape(codes_N.shape[:-1] + (-1, 2))
    return (pairs[..., 0] << 4) | pairs[..., 1]


def unpack_nibbles(packed):
    hi, lo = packed >> 4, packed & 0x0F
    return jnp.stack([hi, lo], axis=-1).reshape(packed.shape[:-1] + (-1,))
