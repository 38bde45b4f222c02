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

The data pipeline applies it through `data.blank_infilling` (`InfillingSettings`, `Infilling`):
each raw `lm` document loses its GLM specials, is cut so that its transform fits seq_len, and is
transformed; packed rows then get their Part B targets from `infill_row_targets`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from medjax.data.encode import Document
from medjax.data.packing import fit_to_length

MODES = ("spans", "gmask")


@dataclasses.dataclass(frozen=True)
class BlankTokens:
    mask: int
    gmask: int
    sop: int
    eop: int
    smask: int | None = None  # GLM's sentence blank: never produced here, but a blank to the model

    @classmethod
    def from_model_config(cls, cfg) -> "BlankTokens":
        ids = cfg.glm_tokens
        if ids is None:
            raise KeyError(f"blank infilling needs a GLM v1 model config; family {cfg.family!r} has no glm_tokens")
        return cls(ids.mask, ids.gmask, ids.sop, ids.eop, ids.smask)


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


# -- the data pipeline's use: config keys, document pieces, row targets ---------------------------

CONFIG_MODES = ("none",) + MODES + ("mixed",)
SETTING_KEYS = ("mode", "mask_ratio", "mean_span", "gmask_fraction", "gmask_min")


@dataclasses.dataclass(frozen=True)
class InfillingSettings:
    """`data.blank_infilling`: which objective CP documents get ('mixed': [gMASK] with probability
    gmask_fraction, else [MASK] spans), with the span sampling knobs."""
    mode: str = "none"
    mask_ratio: float = 0.15
    mean_span: float = 3.0
    gmask_fraction: float = 0.5
    gmask_min: float = 0.5

    def __post_init__(self):
        def need(cond, key, msg):
            if not cond:
                raise ValueError(f"data.blank_infilling.{key}={getattr(self, key)!r}: {msg}")

        need(self.mode in CONFIG_MODES, "mode", f"expected one of {CONFIG_MODES}")
        need(0 < self.mask_ratio < 1, "mask_ratio", "expected a fraction in (0, 1)")
        need(self.mean_span > 0, "mean_span", "must be positive")
        need(0 <= self.gmask_fraction <= 1, "gmask_fraction", "expected a fraction in [0, 1]")
        need(0 < self.gmask_min <= 1, "gmask_min", "expected a fraction in (0, 1]")

    @classmethod
    def from_config(cls, section) -> "InfillingSettings":
        if section is None:
            return cls()
        unknown = sorted(set(section) - set(SETTING_KEYS))
        if unknown:
            raise KeyError(f"data.blank_infilling: unknown keys {unknown}; known: {list(SETTING_KEYS)}")
        return cls(**{k: section[k] for k in SETTING_KEYS if k in section})

    @property
    def on(self) -> bool:
        return self.mode != "none"

    def max_raw_length(self, seq_len: int) -> int:
        """The longest raw document whose transform surely fits seq_len: each span adds a blank and
        a <sop>, and spans mode makes at most one span per masked token."""
        def worst(n):
            spans = max(1, int(round(self.mask_ratio * n))) if self.mode in ("spans", "mixed") else 1
            return n + 2 * spans

        n = seq_len - 2
        while n > 0 and worst(n) > seq_len:
            n -= 1
        if n <= 0:
            raise ValueError(f"train.seq_len={seq_len} leaves no room for a blank-infilled document")
        return n


def blank_tokens_of(model_cfg) -> BlankTokens | None:
    """The special ids a GLM v1 model reads; None for models that have no blank infilling."""
    return BlankTokens.from_model_config(model_cfg) if model_cfg.family == "glm_v1" else None


def strip_special(doc: Document, tokens: BlankTokens) -> Document:
    """Drops the GLM specials from a raw document (ChatGLM-6B's tokenizer uses <sop>/<eop> as BOS/EOS):
    a stray <sop> would start Part B early, a stray blank would take a span."""
    special = [t for t in (tokens.mask, tokens.gmask, tokens.smask, tokens.sop, tokens.eop) if t is not None]
    keep = ~np.isin(doc.ids, special)
    return Document(doc.ids[keep], doc.trained[keep])


def infill_document(doc: Document, rng: np.random.Generator, tokens: BlankTokens,
                    settings: InfillingSettings) -> Document:
    """A raw (stripped, already fitted) piece -> Part A + Part B, `trained` on Part B. The Part B
    targets do not follow the next-token rule; `infill_row_targets` sets them on the packed row."""
    mode = settings.mode
    if mode == "mixed":
        mode = "gmask" if rng.random() < settings.gmask_fraction else "spans"
    out = blank_infilling(doc.ids, rng, tokens, mode=mode, mask_ratio=settings.mask_ratio,
                          mean_span=settings.mean_span, gmask_min=settings.gmask_min)
    return Document(out["tokens"], np.cumsum(out["tokens"] == tokens.sop) > 0)


def infill_row_targets(row: dict[str, np.ndarray], tokens: BlankTokens) -> dict[str, np.ndarray]:
    """Targets and loss mask of a packed row of blank-infilled documents, from its ids: Part A
    predicts the next token without loss; in Part B each span token predicts the next one and a
    span's last token (before the next <sop> or the document's end) predicts <eop>."""
    ids, segments = row["tokens"], row["segment_ids"]
    for segment in np.unique(segments[segments > 0]):
        slots = np.flatnonzero(segments == segment)
        doc = ids[slots]
        is_sop = doc == tokens.sop
        if not is_sop.any():
            raise ValueError(f"segment {segment} of a blank-infilling row has no <sop> ({tokens.sop})")
        part_b = np.cumsum(is_sop) > 0
        span_end = part_b & np.append(is_sop[1:], True)
        row["targets"][slots] = np.where(span_end, tokens.eop, np.append(doc[1:], tokens.eop))
        row["loss_mask"][slots] = part_b.astype(np.float32)
    return row


class Infilling:
    """Blank infilling as the pipeline applies it: strip the GLM specials, cut the raw document to
    a length whose transform fits seq_len, transform each piece with its own seeded generator."""

    def __init__(self, settings: InfillingSettings, tokens: BlankTokens, seq_len: int):
        self.settings, self.tokens, self.raw_len = settings, tokens, settings.max_raw_length(seq_len)

    def pieces(self, doc: Document, policy: str, seed: tuple) -> tuple[list[Document], int]:
        """(transformed pieces, length of the stripped raw document)."""
        raw = strip_special(doc, self.tokens)
        pieces = fit_to_length(raw, self.raw_len, policy)
        return [infill_document(p, np.random.default_rng([*seed, i]), self.tokens, self.settings)
                for i, p in enumerate(pieces)], len(raw)

    def row(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return infill_row_targets(row, self.tokens)

    def describe(self) -> dict:
        return dataclasses.asdict(self.settings)
