"""LoRA adapters of separate layers <-> one adapter on the HF Linear that fuses them (GLM v1's
query_key_value holds q, k and v), in PEFT's [r, in] / [out, r] layout, numpy only.

n parts with rank r each become one rank n*r adapter: A_fused stacks the parts' A rows, B_fused is
block diagonal (part j's B in the column block j), its rows put in the fused order by `fuse`. The
fused adapter then adds exactly the parts' deltas, provided its scale equals theirs (see
`fused_alpha`). A fused adapter splits back only when it has that block structure; a general one
(trained on the fused layer, e.g. DoctorGLM's rank-8 query_key_value) does not.
"""
from __future__ import annotations

import math

import numpy as np


def fused_alpha(alpha: float, parts: int, rslora: bool) -> float:
    """The alpha that keeps the scale of rank r * parts equal to alpha's scale at rank r."""
    return alpha * (math.sqrt(parts) if rslora else parts)


def fuse_adapter(a_parts: list, b_parts: list, fuse) -> tuple[np.ndarray, np.ndarray]:
    """Per-part A [r, in] and B [out_j, r] -> (A_fused [n r, in], B_fused [sum out_j, n r])."""
    n, r = len(a_parts), a_parts[0].shape[0]
    blocks = np.zeros((n, b_parts[0].shape[0], n * r), np.float32)
    for j, b in enumerate(b_parts):
        blocks[j, :, j * r:(j + 1) * r] = b
    return np.concatenate(a_parts, axis=0), fuse(blocks)


def split_adapter(a_fused: np.ndarray, b_fused: np.ndarray, n: int, split) -> list | None:
    """The per-part [(A [r, in], B [out_j, r])] of a block-structured fused adapter, or None when
    B_fused has a nonzero entry outside the blocks (a general adapter: no exact split exists)."""
    rank = a_fused.shape[0]
    if rank % n:
        return None
    r = rank // n
    rows = split(b_fused)  # [n, out_j, n r]
    parts = []
    for j in range(n):
        outside = np.concatenate([rows[j, :, : j * r], rows[j, :, (j + 1) * r:]], axis=1)
        if np.any(outside != 0):
            return None
        parts.append((a_fused[j * r:(j + 1) * r], rows[j, :, j * r:(j + 1) * r]))
    return parts


def split_delta(a_fused: np.ndarray, b_fused: np.ndarray, scale: float, split) -> np.ndarray:
    """The fused adapter's weight change per part, [n, out_j, in] in float32 (for merging)."""
    return split(scale * (b_fused.astype(np.float32) @ a_fused.astype(np.float32)))
