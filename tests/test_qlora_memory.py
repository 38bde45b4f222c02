"""QLoRA's dequantisation in a form the TPU compiler keeps small, with numerics unchanged.

On the TPU an array's last axis is padded to 128 lanes. The old dequantisation worked on the flat
[in*out] weight vector and looked codes up with a gather, whose index arrays end in an axis of 1:
compiling `x @ dequantise(one llama2-7b MLP kernel)` for v5e needed 11 GiB of temporaries (the whole
llama2-7b QLoRA step did not fit a 16 GiB chip); on kernel rows with a select-tree lookup it needs
0.34 GiB. XLA:CPU's memory analysis is the same for both forms, so the regression is checked on the
program's structure; the numerics against an independent numpy decoding of the stored arrays.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from medjax.models import llama
from medjax.models.config import ModelConfig
from medjax.peft.config import PeftSettings
from medjax.peft.lora import LoRALinear, LoRAParam, plain_linear
from medjax.peft.nf4 import NF4_CODE_BOOK
from medjax.peft.quantized import BLOCK, SCALE_BLOCK, QuantizedLinear, dequantise, quantise
from medjax.peft.setup import apply_peft


def numpy_dequantise(q: dict, fmt: str, shape: tuple[int, int]) -> np.ndarray:
    """The storage layout of quantized.py decoded with numpy alone (table lookups by indexing)."""
    q = {k: np.asarray(v) for k, v in q.items()}
    lead = q["codes"].shape[:-2]
    if fmt == "nf4":
        codes = np.stack([q["codes"] >> 4, q["codes"] & 0x0F], axis=-1).reshape(lead + (-1,))
        values = NF4_CODE_BOOK[codes]
        nb = q["absmax_codes"].shape[-1]
        scale = np.repeat(q["absmax_scale"], SCALE_BLOCK, axis=-1)[..., :nb]
        absmax = q["absmax_codes"].astype(np.float32) * scale + q["absmax_offset"][..., None]
    else:
        values = q["codes"].astype(np.float32) / np.float32(127.0)
        absmax = q["absmax"]
    return (values.reshape(absmax.shape + (BLOCK,)) * absmax[..., None]).reshape(lead + shape)


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                yield from _eqns(inner)


# (in, out): whole blocks per kernel row (every real model), and rows of one block (out = 96)
SHAPES = [(128, 192), (64, 96)]


@pytest.mark.parametrize("fmt", ["nf4", "int8"])
@pytest.mark.parametrize("shape", SHAPES)
def test_dequantisation_equals_a_numpy_decoding(fmt, shape):
    w = np.random.default_rng(0).normal(size=(2,) + shape).astype(np.float32)  # two stacked layers
    q = quantise(jnp.asarray(w), fmt)
    got, want = np.asarray(dequantise(q, fmt, shape)), numpy_dequantise(q, fmt, shape)
    if fmt == "nf4":  # code value x absmax: one float32 product either way
        np.testing.assert_array_equal(got, want)
    else:  # XLA divides by 127 as a multiplication by its reciprocal: at most an ulp apart
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("fmt", ["nf4", "int8"])
def test_dequantisation_has_no_gather_and_keeps_the_kernel_rows(fmt):
    shape = (128, 192)
    q = jax.eval_shape(lambda: quantise(jnp.zeros((2,) + shape), fmt))
    jaxpr = jax.make_jaxpr(lambda q: dequantise(q, fmt, shape))(q).jaxpr
    weights = 2 * shape[0] * shape[1]
    for eqn in _eqns(jaxpr):
        assert eqn.primitive.name != "gather", "code book lookup by gather: index arrays padded to 128 lanes on TPU"
        for var in eqn.outvars:
            s = var.aval.shape
            if np.prod(s) >= weights // 2:  # a weight-sized intermediate: laid out as [layers, in rows, ...]
                assert s[:2] == (2, shape[0]), f"{eqn.primitive.name} makes a weight-sized array of shape {s}"


@pytest.mark.parametrize("fmt", ["nf4", "int8"])
def test_codes_are_stored_as_kernel_rows_and_read_without_a_reshape(fmt):
    """Codes stored flat ([layers, in*out/2]) were reshaped to rows inside the scanned layer: a copy
    between tiled layouts on the TPU, which libtpu compiled so slowly that the llama2-7b QLoRA step for
    v5e:1x1 grew by minutes and GBs of host memory per layer (killed at 24 GB); a scan of 4 such
    4096x11008 layers took over 600 s to compile, stored as rows 77 s."""
    shape = (128, 192)
    q = jax.eval_shape(lambda: quantise(jnp.zeros((2,) + shape), fmt))
    assert q["codes"].shape == (2, shape[0], shape[1] // (2 if fmt == "nf4" else 1))
    jaxpr = jax.make_jaxpr(lambda q: dequantise(q, fmt, shape))(q).jaxpr
    codes = jaxpr.invars[sorted(q).index("codes")]  # a dict's leaves come in key order
    readers = [eqn.primitive.name for eqn in _eqns(jaxpr) if codes in eqn.invars]
    assert readers and "reshape" not in readers, readers


@pytest.fixture(scope="module")
def qlora_and_reference():
    """A tiny QLoRA model (fp32) and the same model whose bases are plain Linears holding the numpy
    decoding of the stored weights; the same adapters (B made non-zero) in both."""
    cfg = ModelConfig(family="llama", vocab_size=64, hidden_size=64, intermediate_size=96, num_layers=2,
                      num_heads=4, num_kv_heads=2, max_position_embeddings=64)
    model = apply_peft(llama.build(cfg, nnx.Rngs(0)), PeftSettings(method="qlora", targets="attn,mlp"))
    for _, m in nnx.iter_modules(model):
        if isinstance(m, LoRALinear):
            m.lora_b.set_value(0.1 * jax.random.normal(jax.random.key(1), m.lora_b.shape))
    reference = nnx.clone(model)
    for _, m in nnx.iter_modules(reference):
        if isinstance(m, LoRALinear) and isinstance(m.base, QuantizedLinear):
            b = m.base
            m.base = plain_linear(b, jnp.asarray(numpy_dequantise(b._arrays(), b.fmt, b.kernel_shape[-2:])))
    return model, reference


def _logits_and_grads(model, tokens):
    graphdef, adapters, rest = nnx.split(model, LoRAParam, ...)

    def loss(adapters):
        logits = nnx.merge(graphdef, adapters, rest)(tokens)
        return jnp.mean(jax.nn.logsumexp(logits, -1)), logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(adapters)
    return logits, grads


def test_qlora_logits_and_adapter_gradients_equal_the_decoded_base(qlora_and_reference):
    model, reference = qlora_and_reference
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 64, (2, 16)), jnp.int32)
    logits, grads = _logits_and_grads(model, tokens)
    ref_logits, ref_grads = _logits_and_grads(reference, tokens)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=0, atol=1e-6)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=0, atol=1e-6)
