"""GLM's autoregressive blank infilling (Du et al. 2022, arXiv:2103.10360, sections 2.1-2.3) as a
per-document transform for continued pretraining of GLM v1 models (ChatGLM-6B, GLM-10B).

A document x becomes  Part A = x with each sampled span replaced by one blank token, followed by
Part B = for each span: <sop> span tokens, with targets span tokens <eop>. The loss is the ordinary
masked next-token loss (train/objectives.py `lm`) with loss_mask 1 on Part B only, so the trainer
needs nothing new; the GLM v1 model derives 2D positions and the Part A / Part B mask from the ids.

Two modes, as in GLM: "spans" ([MASK] spans with Poisson(3) lengths covering ~15% of the tokens:
the blank-infilling objective) and "gmask" (one [gMASK] span covering the last 50-100%: the
generation objective). Spans stay in document order in Part B: the model ties the i-th <sop> to
the i-th blank, so GLM's random span permutation is left out.
"""
from __future__ import annotations

import dataclasses

import numpy as np

MODES = ("spans", "gmask")


@dataclasses.dataclass(frozen=True)
class BlankTokens:
    mask: int
    gmask: int
    sop: int
    eop: int

    @classmethod
    def from_model_config(cls, cfg) -> "BlankTokens":
        e = cfg.extra
        missing = [k for k in ("mask_token_id", "gmask_token_id", "sop_token_id", "eop_token_id") if e.get(k) is None]
        if missing:
            raise KeyError(f"blank infilling needs a GLM v1 model config; extra lacks {missing}")
        return cls(e["mask_token_id"], e["gmask_token_id"], e["sop_token_id"], e["eop_token_id"])


def sample_spans(n: int, rng: np.random.Generator, mask_ratio: float, mean_span: float) -> list[tuple[int, int]]:
    """Non-overlapping (start, length) spans in order, covering about mask_ratio of n tokens."""
    budget = max(1, int(round(mask_ratio * n)))
    lengths = []
    while sum(lengths) < budget:
        lengths.append(int(max(1, rng.poisson(mean_span))))
    lengths[-1] -= sum(lengths) - budget
    kept = n - budget
    # spread the kept tokens over the k + 1 gaps around the spans: choose k gap slots among kept + 1
    gaps = np.sort(rng.choice(kept + 1, size=min(len(lengths), kept + 1), replace=False))
    lengths = lengths[: len(gaps)]
    spans, shift = [], 0
    for gap, length in zip(gaps, lengths):
        spans.append((int(gap) + shift, length))
        shift += length
    return spans


def blank_infilling(ids, rng: np.random.Generator, tokens: BlankTokens, mode: str = "spans",
                    mask_ratio: float = 0.15, mean_span: float = 3.0, gmask_min: float = 0.5) -> dict:
    """{tokens, targets, loss_mask} (int32, int32, float32) for one document of token ids."""
    ids = [int(i) for i in ids]
    n = len(ids)
    if n == 0:
        raise ValueError("blank_infilling: empty document")
    if mode == "spans":
        spans, blank = sample_spans(n, rng, mask_ratio, mean_span), tokens.mask
    elif mode == "gmask":
        length = int(rng.integers(max(1, int(np.ceil(gmask_min * n))), n + 1))
        spans, blank = [(n - length, length)], tokens.gmask
    else:
        raise ValueError(f"blank_infilling: unknown mode {mode!r}; expected one of {MODES}")
    part_a, part_b_in, part_b_out, cursor = [], [], [], 0
    for start, length in spans:
        part_a += ids[cursor:start] + [blank]
        span = ids[start:start + length]
        part_b_in += [tokens.sop] + span
        part_b_out += span + [tokens.eop]
        cursor = start + length
    part_a += ids[cursor:]
    seq = np.asarray(part_a + part_b_in, np.int32)
    # Part A carries no loss; its targets are just the next input token (the last one's is <sop>)
    targets = np.asarray(part_a[1:] + part_b_in[:1] + part_b_out, np.int32)
    loss_mask = np.concatenate([np.zeros(len(part_a), np.float32), np.ones(len(part_b_in), np.float32)])
    return {"tokens": seq, "targets": targets, "loss_mask": loss_mask}
