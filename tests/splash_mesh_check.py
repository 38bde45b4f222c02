"""A jitted train step (loss + gradients) of a tiny LLaMA with model.attention=splash on a 1 x 2 x 2
mesh (fsdp 2, tensor 2) against model.attention=xla on the same mesh. Run in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (tests/test_attention_kernels.py); prints a JSON
object on its last line.
"""
from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from medjax.models import llama  # noqa: E402
from medjax.models.config import ModelConfig  # noqa: E402
from medjax.models.layers import positions_from_segments  # noqa: E402
from medjax.parallel.mesh import make_mesh, place, state_shardings  # noqa: E402
from medjax.parallel.rules import activation_sharding  # noqa: E402

T = 128


def main():
    mesh = make_mesh(1, 2, 2)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 128, (4, T)), jnp.int32)
    seg = np.ones((4, T), np.int32)
    seg[1::2, 50:] = 2
    seg[::2, 100:] = 0
    segments = jnp.asarray(seg)
    results, jaxprs = {}, {}
    for kind in ("xla", "splash"):
        cfg = ModelConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                          num_kv_heads=2, max_position_embeddings=256, remat="full", attention=kind)
        graphdef, state = nnx.split(llama.build(cfg, nnx.Rngs(0)))
        state = place(state, state_shardings(state, mesh))

        def loss(state, tokens, segments):
            logits = nnx.merge(graphdef, state)(tokens, positions_from_segments(segments), segments)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:])
            return jnp.mean(nll)

        step = jax.jit(jax.value_and_grad(loss))
        with activation_sharding(mesh):
            jaxprs[kind] = str(jax.make_jaxpr(step)(state, tokens, segments))
            results[kind] = step(state, tokens, segments)
    (loss_x, grads_x), (loss_s, grads_s) = results["xla"], results["splash"]
    grad_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(grads_x), jax.tree.leaves(grads_s)))
    print(json.dumps({"devices": mesh.size, "shard_map": "shard_map" in jaxprs["splash"],
                      "loss_diff": abs(float(loss_x) - float(loss_s)), "grad_diff": grad_diff}))


if __name__ == "__main__":
    main()
