"""NF4 / int8 storage: the code book, quantise/dequantise, error bounds, double quantisation."""
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.peft.nf4 import NF4_CODE_BOOK, nf4_codes, nf4_values, pack_nibbles, unpack_nibbles
from medjax.peft.quantized import BLOCK, dequantise, quantise


def test_code_book_is_the_published_normal_float_construction():
    # QLoRA / bitsandbytes create_normal_map(offset=0.9677083): 8 positive and 7 negative N(0,1)
    # quantiles plus an exact zero, scaled to [-1, 1]
    from scipy.stats import norm

    offset = 0.9677083
    positive = norm.ppf(np.linspace(offset, 0.5, 9)[:-1])
    negative = -norm.ppf(np.linspace(offset, 0.5, 8)[:-1])
    values = np.sort(np.concatenate([positive, [0.0], negative]))
    values /= np.abs(values).max()
    np.testing.assert_allclose(NF4_CODE_BOOK, values, atol=1e-7)
    assert NF4_CODE_BOOK.shape == (16,) and NF4_CODE_BOOK[7] == 0.0


def test_code_values_round_trip_exactly_and_pack_into_nibbles():
    codes = nf4_codes(jnp.asarray(NF4_CODE_BOOK))
    np.testing.assert_array_equal(np.asarray(codes), np.arange(16))
    np.testing.assert_array_equal(np.asarray(nf4_values(codes)), NF4_CODE_BOOK)
    packed = pack_nibbles(jnp.asarray(np.arange(16, dtype=np.uint8)))
    assert packed.dtype == jnp.uint8 and packed.shape == (8,)
    np.testing.assert_array_equal(np.asarray(unpack_nibbles(packed)), np.arange(16))


def test_dequantised_values_lie_on_the_code_book_times_block_absmax():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 64, 96)).astype(np.float32)  # stacked: two layers
    q = quantise(jnp.asarray(w), "nf4")
    assert q["codes"].dtype == jnp.uint8 and q["codes"].shape == (2, 96, BLOCK // 2)  # 96 one-block rows
    deq = np.asarray(dequantise(q, "nf4", (64, 96)))
    assert deq.shape == w.shape
    absmax = np.asarray(dequantise_absmax(q))
    normalised = deq.reshape(2, -1, BLOCK) / absmax[..., None]
    nearest = np.abs(normalised[..., None] - NF4_CODE_BOOK).min(-1)
    assert nearest.max() < 1e-5


def dequantise_absmax(q):
    from medjax.peft.quantized import _double_dequantise

    return _double_dequantise(q["absmax_codes"], q["absmax_scale"], q["absmax_offset"])


def test_nf4_error_of_random_normal_weights_is_within_the_bound():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(256, 512)).astype(np.float32)
    q = quantise(jnp.asarray(w), "nf4")
    deq = np.asarray(dequantise(q, "nf4", w.shape))
    blocks = w.reshape(-1, BLOCK)
    absmax = np.abs(blocks).max(-1)
    # nearest-code rounding: at most half the widest code gap (0.304 / 2) of the block absmax, plus the
    # double-quantised absmax error (8 bits over a 256-value group: < 1% here)
    half_gap = np.diff(NF4_CODE_BOOK).max() / 2
    err = np.abs(deq.reshape(-1, BLOCK) - blocks)
    assert np.all(err <= (half_gap * 1.01 + 1e-6) * absmax[:, None] + 0.01 * absmax[:, None])
    dq_err = np.abs(np.asarray(dequantise_absmax(q)) - absmax)
    assert dq_err.max() < 0.01 * absmax.max()
    rel_rms = np.sqrt(np.mean((deq - w) ** 2) / np.mean(w ** 2))
    assert rel_rms < 0.12, rel_rms  # NF4 on N(0, 1): about 0.1


def test_int8_storage_error_bound():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(64, 128)).astype(np.float32)
    q = quantise(jnp.asarray(w), "int8")
    assert q["codes"].dtype == jnp.int8
    deq = np.asarray(dequantise(q, "int8", w.shape))
    absmax = np.abs(w.reshape(-1, BLOCK)).max(-1)
    assert np.all(np.abs(deq - w).reshape(-1, BLOCK) <= absmax[:, None] / 254 + 1e-6)


def test_bad_shapes_and_formats_are_errors():
    with pytest.raises(ValueError, match="multiple of the quantisation block"):
        quantise(jnp.ones((3, 5)), "nf4", "layers/attn/q")
    with pytest.raises(ValueError, match="peft.quant"):
        quantise(jnp.ones((8, 8)), "fp8")
