"""LoRA: y = base(x) + scale * dropout(x) @ A @ B, with A [in, r] and B [r, out] as `LoRAParam`s.

The base Linear (or its quantised form, quantized.py) is kept inside `LoRALinear` untouched; only
`LoRAParam` variables are trainable (the trainer's filter), so the base is frozen by construction.
Stacked (scanned) layers get stacked adapters: A and B take the base kernel's leading axes, and
declare logical axes with one entry fewer, so parallel/mesh.py adds the `layers` axis as for the base.
Every adapter module is a `LoRAModule` (LoRALinear here, LoRAEmbed in lora_embedding.py): merge,
unmerge, switching off and export work on all of them alike.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import jax
import jax.numpy as jnp
from flax import nnx

from medjax.models.layers import Linear
from medjax.peft.dropout_mask import keep_mask
from medjax.peft.quantized import QuantizedLinear


class LoRAParam(nnx.Param):
    """An adapter parameter: the only kind of variable a LoRA run trains."""


class LoRALayerIndex(nnx.Variable):
    """Which layer of a stack an adapter belongs to, so dropout masks differ between layers."""


class UnmergedKernel(nnx.Variable):
    """The exact base kernel saved by `merge_adapters`, restored bitwise by `unmerge_adapters`."""


_dropout_key: contextvars.ContextVar = contextvars.ContextVar("medjax_lora_dropout_key", default=None)


@contextlib.contextmanager
def dropout_rng(key):
    """LoRA dropout is active only inside this context (the training objective's forward pass).

    Enter it inside the traced function, around the model call, with that step's PRNG key; None
    leaves dropout off.
    """
    token = _dropout_key.set(key)
    try:
        yield
    finally:
        _dropout_key.reset(token)


def lora_scale(alpha: float, rank: int, rslora: bool) -> float:
    """alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA (Kalajdzievski, 2023)."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


class LoRAModule(nnx.Module):
    """An adapter around a frozen base: `delta()` is what merging adds to `base_weight()`. Subclasses
    set `enabled` (False: the base alone) and `merged` (the delta is in the base weight)."""

    def base_weight(self) -> nnx.Variable:
        raise NotImplementedError

    def delta(self):
        raise NotImplementedError

    def plain(self, weight):
        """The plain layer that replaces this one in an exported backbone, holding `weight`."""
        raise NotImplementedError

    def replace_with_plain(self, model, path: tuple, merge: bool) -> None:
        """In `model` (a copy being exported): this adapter at `path` becomes its plain base layer."""
        weight = self.original_weight()
        if merge:
            weight = (weight.astype(jnp.float32) + self.delta()).astype(weight.dtype)
        replace_module(model, path, self.plain(weight))

    def original_weight(self):
        """The base weight without the adapter, whether or not it is merged."""
        return (self.unmerged_kernel if self.merged else self.base_weight())[...]


class LoRALinear(LoRAModule):
    def __init__(self, base, *, rank: int, alpha: float, rslora: bool = False, dropout: float = 0.0,
                 layer_id: int = 0, rngs: nnx.Rngs):
        self.base = base
        shape = base.kernel_shape if isinstance(base, QuantizedLinear) else base.kernel.shape
        lead, fan_in, fan_out = tuple(shape[:-2]), shape[-2], shape[-1]
        in_axis, out_axis = base_axes(base)
        dtype = base.param_dtype if isinstance(base, QuantizedLinear) else base.kernel.dtype
        # peft's default: A ~ kaiming-uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0
        bound = 1.0 / math.sqrt(fan_in)
        self.lora_a = LoRAParam(jax.random.uniform(rngs.params(), lead + (fan_in, rank), dtype, -bound, bound),
                                axes=(in_axis, "lora_rank"))
        self.lora_b = LoRAParam(jnp.zeros(lead + (rank, fan_out), dtype), axes=("lora_rank", out_axis))
        self.layer_index = LoRALayerIndex(jnp.arange(lead[0], dtype=jnp.int32) if lead else jnp.zeros((), jnp.int32),
                                          axes=())
        self.rank, self.alpha, self.rslora, self.dropout = rank, alpha, rslora, dropout
        self.scale = lora_scale(alpha, rank, rslora)
        self.layer_id = layer_id  # distinguishes this module's dropout stream from the others
        self.enabled = True
        self.merged = False

    def delta(self):
        """scale * A @ B, [..., in, out] in fp32."""
        return self.scale * jnp.einsum("...ir,...ro->...io", self.lora_a[...].astype(jnp.float32),
                                       self.lora_b[...].astype(jnp.float32))

    def _dropped(self, x):
        key = _dropout_key.get()
        if key is None or self.dropout <= 0.0:
            return x
        key = jax.random.fold_in(jax.random.fold_in(key, self.layer_id), self.layer_index[...])
        keep = keep_mask(key, x.shape, 1.0 - self.dropout)  # a counter hash, not threefry: see dropout_mask.py
        return jnp.where(keep, x / (1.0 - self.dropout), 0).astype(x.dtype)

    def base_weight(self) -> nnx.Variable:
        if isinstance(self.base, QuantizedLinear):
            raise ValueError("a quantised base has no weight to merge into in place; use merged_backbone(model) "
                             "for a dequantised, merged copy")
        return self.base.kernel

    def original_weight(self):
        if isinstance(self.base, QuantizedLinear):
            return self.base.dequantised_kernel().astype(self.base.param_dtype)
        return super().original_weight()

    def plain(self, weight):
        return plain_linear(self.base, weight)

    def __call__(self, x):
        y = self.base(x)
        if not self.enabled or self.merged:
            return y
        dtype = self.base.dtype
        h = jnp.einsum("...i,ir->...r", self._dropped(x).astype(dtype), self.lora_a[...].astype(dtype))
        up = jnp.einsum("...r,ro->...o", h, self.lora_b[...].astype(dtype))
        return (y + (self.scale * up).astype(y.dtype)).astype(y.dtype)


def base_axes(base) -> tuple:
    return tuple(base.axes if isinstance(base, QuantizedLinear) else base.kernel.get_metadata()["axes"])


def lora_modules(model) -> list[tuple[tuple, LoRAModule]]:
    return [(tuple(path), m) for path, m in nnx.iter_modules(model) if isinstance(m, LoRAModule)]


@contextlib.contextmanager
def adapters_disabled(model):
    """Runs `model` as its base (reference = base, e.g. for DPO): `with adapters_disabled(m): m(x)`.

    Works inside jit/grad as long as the context wraps the model call in the traced function.
    """
    modules = [m for _, m in lora_modules(model)]
    prompt = getattr(model, "prompt_enabled", None)
    before = [m.enabled for m in modules]
    for m in modules:
        m.enabled = False
    if prompt is not None:
        model.prompt_enabled = False
    try:
        yield model
    finally:
        for m, was in zip(modules, before):
            m.enabled = was
        if prompt is not None:
            model.prompt_enabled = prompt


def merge_adapters(model) -> None:
    """In place: base weight += scale * A @ B; the exact old weight is kept for `unmerge_adapters`."""
    for path, m in lora_modules(model):
        if m.merged:
            continue
        try:
            weight = m.base_weight()
        except ValueError as e:
            raise ValueError(f"{'/'.join(map(str, path))}: cannot merge: {e}") from None
        kernel = weight[...]
        m.unmerged_kernel = UnmergedKernel(kernel, axes=weight.get_metadata()["axes"])
        weight.set_value((kernel.astype(jnp.float32) + m.delta()).astype(kernel.dtype))
        m.merged = True


def unmerge_adapters(model) -> None:
    """Undoes `merge_adapters` exactly (restores the saved kernel bit for bit)."""
    for _, m in lora_modules(model):
        if m.merged:
            m.base_weight().set_value(m.unmerged_kernel[...])
            del m.unmerged_kernel
            m.merged = False


def replace_module(model, path: tuple, module) -> None:
    parent = model
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    setattr(parent, path[-1], module)


def plain_linear(layer, kernel) -> Linear:
    """A Linear like `layer` (a Linear or QuantizedLinear) holding `kernel`, without drawing new weights."""
    in_axis, out_axis = base_axes(layer)
    out = nnx.eval_shape(lambda: Linear(kernel.shape[-2], kernel.shape[-1], axes=(in_axis, out_axis),
                                        use_bias=layer.bias is not None, dtype=layer.dtype,
                                        fp32_output=layer.fp32_output, rngs=nnx.Rngs(0)))
    out.kernel = nnx.Param(kernel, axes=(in_axis, out_axis))
    out.bias = layer.bias
    return out


def merged_backbone(model, merge: bool = True):
    """A copy of `model` with plain layers (adapters merged unless merge=False, quantised bases
    dequantised), ready for HF export. The input model is left as it is."""
    model = nnx.clone(model)
    for path, m in lora_modules(model):
        m.replace_with_plain(model, path, merge)
    for path, m in [(tuple(p), m) for p, m in nnx.iter_modules(model) if isinstance(m, QuantizedLinear)]:
        replace_module(model, path, plain_linear(m, m.dequantised_kernel().astype(m.param_dtype)))
    return model
