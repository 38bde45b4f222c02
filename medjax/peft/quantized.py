"""Frozen, quantised Linear weights for QLoRA: NF4 with double quantisation, or int8.

Layout per kernel [in, out] (stacked layers add a leading axis to every array), cut row-major into
blocks of 64; the codes keep the kernel's rows ([in, out], or rows of one block, [in*out/64, 64], when
out is not whole blocks):
  nf4:  codes uint8 [rows, width/2] (two 4-bit codes per byte), absmax of each block stored as int8
        [in*out/64] relative to the tensor's mean absmax ("offset"), with one float32 scale per 256
        absmax values (QLoRA's double quantisation; bitsandbytes uses a dynamic 8-bit map for that
        second level, we use a symmetric linear one).
  int8: codes int8 [rows, width], float32 absmax per block [in*out/64].
Codes stored flat ([in*out/2]) had to be reshaped to rows inside the scanned layer: on the TPU that is
a copy between tiled layouts, and libtpu compiled it so that a llama2-7b QLoRA step for v5e took
minutes per layer and over 24 GB of host memory (tests/test_qlora_memory.py).
The variables are `QuantizedWeight`, not `nnx.Param`: no optimizer ever sees them.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from medjax.peft.config import FORMATS
from medjax.peft.nf4 import nf4_codes, nf4_values, pack_nibbles, unpack_nibbles

BLOCK = 64  # weights per absmax scale
SCALE_BLOCK = 256  # absmax values per second-level scale (double quantisation)


class QuantizedWeight(nnx.Variable):
    """A frozen quantised array (codes or scales)."""


def _rows(n_in: int, n_out: int) -> tuple[int, int]:
    """(rows, width) of a kernel's codes: the kernel rows when they are whole blocks, else one block a row."""
    width = n_out if n_out % BLOCK == 0 else BLOCK
    return n_in * n_out // width, width


def _blocks(w, what: str):
    lead, n = w.shape[:-2], w.shape[-2] * w.shape[-1]
    if n % BLOCK:
        raise ValueError(f"{what}: {w.shape[-2]}x{w.shape[-1]} = {n} weights is not a multiple of the "
                         f"quantisation block ({BLOCK})")
    return w.astype(jnp.float32).reshape(lead + (n // BLOCK, BLOCK))


def _double_quantise(absmax_NB):
    """absmax [..., nb] -> (int8 codes [..., nb], scales [..., ceil(nb/256)], offset [...])."""
    nb = absmax_NB.shape[-1]
    offset = jnp.mean(absmax_NB, axis=-1)
    centred = absmax_NB - offset[..., None]
    pad = -nb % SCALE_BLOCK
    groups = jnp.pad(centred, [(0, 0)] * (centred.ndim - 1) + [(0, pad)]).reshape(
        centred.shape[:-1] + (-1, SCALE_BLOCK))
    scale = jnp.max(jnp.abs(groups), axis=-1) / 127.0
    codes = jnp.round(groups / jnp.where(scale == 0, 1.0, scale)[..., None])
    codes = codes.reshape(centred.shape[:-1] + (-1,))[..., :nb].astype(jnp.int8)
    return codes, scale, offset


def _double_dequantise(codes, scale, offset):
    nb = codes.shape[-1]
    pad = -nb % SCALE_BLOCK
    groups = jnp.pad(codes.astype(jnp.float32), [(0, 0)] * (codes.ndim - 1) + [(0, pad)]).reshape(
        codes.shape[:-1] + (-1, SCALE_BLOCK))
    absmax = (groups * scale[..., None]).reshape(codes.shape[:-1] + (-1,))[..., :nb]
    return absmax + offset[..., None]


@functools.partial(jax.jit, static_argnames=("fmt", "what"))  # one fused computation, not many eager ops
def quantise(w, fmt: str, what: str = "kernel") -> dict:
    """Quantised arrays of kernel `w` [..., in, out]; see the module docstring for the layout."""
    blocks = _blocks(w, what)
    absmax = jnp.max(jnp.abs(blocks), axis=-1)
    normalised = blocks / jnp.where(absmax == 0, 1.0, absmax)[..., None]
    rows = blocks.shape[:-2] + _rows(w.shape[-2], w.shape[-1])
    if fmt == "nf4":
        codes, scale, offset = _double_quantise(absmax)
        return {"codes": pack_nibbles(nf4_codes(normalised).reshape(rows)), "absmax_codes": codes,
                "absmax_scale": scale, "absmax_offset": offset}
    if fmt == "int8":
        return {"codes": jnp.round(normalised * 127.0).astype(jnp.int8).reshape(rows), "absmax": absmax}
    raise ValueError(f"peft.quant={fmt!r}: expected one of {FORMATS}")


def _quantise_from(kernel, fmt: str, what: str) -> dict:
    """quantise(kernel); a host (numpy) stack of layers goes to the device one layer at a time, so the
    device never holds more than one full-precision layer (each layer is quantised on its own anyway)."""
    if isinstance(kernel, jax.Array) or kernel.ndim == 2:
        return quantise(kernel, fmt, what)
    layers = [quantise(kernel[i], fmt, what) for i in range(kernel.shape[0])]  # one compile for all
    return {name: jnp.stack([q[name] for q in layers]) for name in layers[0]}


def dequantise(q: dict, fmt: str, shape_in_out: tuple[int, int]):
    """float32 kernel [..., in, out] from the arrays of `quantise`.

    Computed on the kernel's rows (on rows of one block when a row is not whole blocks), never on the
    flat [in*out] vector: the TPU pads an array's last axis to 128 lanes, and the flat form took 11 GiB
    of temporaries to dequantise one llama2-7b MLP kernel (tests/test_qlora_memory.py). The codes are
    stored as those rows, so no reshape of them happens here."""
    lead = q["codes"].shape[:-2]
    n_rows, width = _rows(*shape_in_out)
    rows = lead + (n_rows,)
    if q["codes"].shape[-2] != n_rows:
        raise ValueError(f"quantised codes of shape {q['codes'].shape} are not the rows of a {shape_in_out} kernel "
                         f"({n_rows} rows of {width} weights)")
    if fmt == "nf4":
        absmax = _double_dequantise(q["absmax_codes"], q["absmax_scale"], q["absmax_offset"])
        values = nf4_values(unpack_nibbles(q["codes"]))
    else:
        absmax = q["absmax"]
        values = q["codes"].astype(jnp.float32) / 127.0
    scales = jnp.repeat(absmax.reshape(rows + (width // BLOCK,)), BLOCK, axis=-1)
    return (values * scales).reshape(lead + tuple(shape_in_out))


# logical axes of each array (without the stacked `layers` axis)
_AXES = {"codes": ("quant_blocks", None), "absmax_codes": ("quant_blocks",), "absmax_scale": (None,),
         "absmax_offset": (), "absmax": ("quant_blocks",)}


class QuantizedLinear(nnx.Module):
    """A Linear whose kernel is stored quantised and dequantised in the forward pass (compute in `dtype`)."""

    def __init__(self, linear, fmt: str, what: str = "kernel"):
        kernel = linear.kernel[...]
        self.in_features, self.out_features = kernel.shape[-2], kernel.shape[-1]
        self.dtype, self.fp32_output, self.fmt = linear.dtype, linear.fp32_output, fmt
        self.param_dtype = kernel.dtype
        self.axes = tuple(linear.kernel.get_metadata()["axes"])
        for name, array in _quantise_from(kernel, fmt, what).items():
            setattr(self, name, QuantizedWeight(array, axes=_AXES[name]))
        self.bias = linear.bias

    def _arrays(self) -> dict:
        names = ("codes", "absmax_codes", "absmax_scale", "absmax_offset") if self.fmt == "nf4" else ("codes", "absmax")
        return {n: getattr(self, n)[...] for n in names}

    @property
    def kernel_shape(self) -> tuple:
        return tuple(self.codes.shape[:-2]) + (self.in_features, self.out_features)

    def dequantised_kernel(self):
        return dequantise(self._arrays(), self.fmt, (self.in_features, self.out_features))

    def __call__(self, x):
        kernel = self.dequantised_kernel().astype(self.dtype)
        y = jnp.einsum("...i,io->...o", x.astype(self.dtype), kernel,
                       preferred_element_type=jnp.float32 if self.fp32_output else None)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y
