"""The data entry points the trainer calls.

    it = build_train_iterator(cfg, tokenizer, kind="lm"|"sft"|"pref", seq_len=T, batch_size=B, seed=S)
    batch = next(it)     # numpy [B, T]: tokens, targets, loss_mask, segment_ids, positions
    it.get_state() / it.set_state(state)     # JSON-serialisable; a fresh iterator continues exactly
    it.token_counts(), it.stats()
    it = build_train_iterator(..., rows=[0, 1, 2, 3])   # a process's rows of each batch (per-host data)
    evals = build_eval_batches(cfg, tokenizer, kind=..., seq_len=T, batch_size=B)

Every record is read and converted when the iterator is built, so bad input stops the run before
step 0. Records are tokenized when drawn; the iterator's state names documents by (source, record,
piece), never by their tokens, so it stays small.

GLM v1 blank infilling (`data.blank_infilling`, kind 'lm' only) needs the model's special ids:
pass `blank_tokens` (glm_blank_infilling.blank_tokens_of(model_config)). A piece's spans are drawn
from (seed, source, record, piece), so a resumed iterator rebuilds the same rows.

Per-host data (`data.shards`, data/host_shards.py): with `rows`, a process builds only its rows of
each global batch, from the shards of the data that hold them; one process with the default builds
every row from the single stream, as before.
"""
from __future__ import annotations

import collections
import zlib
from typing import Iterator

import numpy as np

from medjax.data import templates
from medjax.data.config import KINDS
from medjax.data.encode import Document, EncodeOptions, Pair, encode_record
from medjax.data.formats import FORMATS, to_record
from medjax.data.glm_blank_infilling import BlankTokens, Infilling, InfillingSettings
from medjax.data.host_shards import ShardedIterator, checked_rows, shard_count, shard_records, shard_seed
from medjax.data.mixture import MixtureSampler, SourceSpec, parse_sources
from medjax.data.packing import (TRUNCATIONS, Packer, empty_row, fit_to_length, pack_documents, row_from_pair,
                                 stack_rows, truncate_pair)
from medjax.data.readers import TEXT_UNITS, read_rows
from medjax.data.records import DataError, Record
from medjax.data.streams import StreamedRecords

_SHAPES_FOR_KIND = {"lm": ("text", "chat"), "sft": ("chat",), "pref": ("pref",)}  # record shapes per kind
STATE_VERSION = 1


# -- loading -----------------------------------------------------------------------------------
def iter_source(spec: SourceSpec, cfg, kind: str, counts: collections.Counter) -> Iterator[Record]:
    """The records of one source, converted and checked against the kind of training, lazily."""
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")
    fmt = spec.format or cfg.format
    n = 0
    for row, origin in read_rows(spec.path, text_unit=spec.text_unit or cfg.text_unit,
                                 skip_bad=cfg.skip_bad_records, counts=counts, hf_split=cfg.hf_split,
                                 streaming=spec.streaming):
        counts["records_read"] += 1
        try:
            record = to_record(row, origin, fmt)
            if record.shape not in _SHAPES_FOR_KIND[kind]:
                raise DataError(f"{origin}: a {record.shape!r} record cannot train kind {kind!r} "
                                f"(it takes {' or '.join(_SHAPES_FOR_KIND[kind])} records)")
        except DataError:
            if not cfg.skip_bad_records:
                raise
            counts["bad_records"] += 1
            continue
        if record.shape == "pref" and cfg.skip_identical_pairs and record.chosen == record.rejected:
            counts["identical_pairs_skipped"] += 1
            continue
        yield record
        n += 1
        if cfg.max_records is not None and n >= cfg.max_records:
            return


def load_source(spec: SourceSpec, cfg, kind: str, counts: collections.Counter) -> list[Record] | StreamedRecords:
    """A source's records: all in memory, or a lazy stream for `streaming` sources."""
    if spec.streaming:
        return StreamedRecords(lambda c: iter_source(spec, cfg, kind, c), counts, spec.name)
    return list(iter_source(spec, cfg, kind, counts))


def split_eval(records: list[Record], name: str, cfg) -> tuple[list[Record], list[Record]]:
    """(train, eval): a fixed random `eval_fraction` (capped) of a source, the same for every seed."""
    if isinstance(records, StreamedRecords):  # a stream has no size to split: give data.eval instead
        return records, []
    n_eval = min(int(cfg.eval_max_records), int(round(len(records) * float(cfg.eval_fraction))))
    if n_eval <= 0 or len(records) - n_eval <= 0:
        return records, []
    order = np.random.default_rng([int(cfg.split_seed), zlib.crc32(name.encode())]).permutation(len(records))
    held = set(order[:n_eval].tolist())
    return ([r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held])


def _train_spec(cfg):
    return cfg.sources if cfg.get("sources") else cfg.train


def _options(cfg, tokenizer, model_family: str | None) -> EncodeOptions:
    template = (templates.get_template(cfg.template) if cfg.template
                else templates.default_template(tokenizer, model_family))
    return EncodeOptions(template=template, train_on_prompt=bool(cfg.train_on_prompt),
                         mask_history=bool(cfg.mask_history), system=cfg.system)


def _truncation(cfg, kind: str) -> str:
    if cfg.truncation == "auto":
        return "split" if kind == "lm" else "right"
    return cfg.truncation


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_id if tokenizer.pad_id is not None else 0


def _infilling(cfg, kind: str, seq_len: int, model_family: str | None, blank_tokens: BlankTokens | None):
    """The blank-infilling transform the config asks for, or None; wrong uses name the key."""
    settings = InfillingSettings.from_config(cfg.get("blank_infilling"))
    if not settings.on:
        return None
    if kind != "lm":
        raise ValueError(f"data.blank_infilling.mode={settings.mode!r}: blank infilling is a continued-pretraining "
                         f"objective (kind 'lm'); this stage's data kind is {kind!r}")
    if blank_tokens is None:
        raise ValueError(f"data.blank_infilling.mode={settings.mode!r} needs a GLM v1 model (ChatGLM-6B, GLM-10B) "
                         f"and its special ids; this model's family is {model_family!r}")
    return Infilling(settings, blank_tokens, seq_len)


# -- training ----------------------------------------------------------------------------------
class TrainIterator:
    """An endless, resumable iterator of packed batches over a mixture of sources."""

    def __init__(self, specs: list[SourceSpec], records: list[list[Record] | StreamedRecords], tokenizer, kind: str,
                 seq_len: int, batch_size: int, seed: int, options: EncodeOptions, truncation: str,
                 pack_buffer: int, shuffle: bool, counts: collections.Counter, infilling: Infilling | None = None):
        self.specs, self.records, self.tokenizer, self.kind = specs, records, tokenizer, kind
        self.infilling = infilling
        self.seq_len, self.batch_size, self.options, self.truncation = seq_len, batch_size, options, truncation
        sizes = [len(r) if isinstance(r, list) else None for r in records]  # None: a stream (or a shard of one)
        self.sampler = MixtureSampler(specs, sizes, seed, shuffle)
        self.packer = Packer(seq_len, pack_buffer if kind != "pref" else 1, _pad_id(tokenizer))
        self.queue: list[tuple[tuple, Document]] = []  # pieces of a split record not yet buffered
        self.tokens = [0] * len(specs)
        self.counts = counts
        self.rows = list(range(batch_size))  # the rows of each global batch this iterator yields: all

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        rows = [self._next_row() for _ in range(self.batch_size)]
        return stack_rows(rows)

    # -- rows --------------------------------------------------------------------------------
    def _next_row(self) -> dict[str, np.ndarray]:
        if self.kind == "pref":
            source, index = self.sampler.next()
            self.counts["records_drawn"] += 1
            pair = self._encode(source, index)
            if truncate_pair(pair, self.seq_len) is not pair:
                self.counts["pairs_truncated"] += 1
            row = row_from_pair(pair, self.seq_len, _pad_id(self.tokenizer))
            self._count(row, [source])
            return row
        row, keys = self.packer.next_row(self._next_piece)
        if self.infilling:
            row = self.infilling.row(row)
        self._count(row, [key[0] for key in keys])
        return row

    def _next_piece(self) -> tuple[tuple, Document]:
        misses = 0
        while not self.queue:
            source, index = self.sampler.next()
            self.counts["records_drawn"] += 1
            pieces, cut = self._pieces(source, index)
            if cut:
                self.counts["records_truncated" if pieces else "records_dropped"] += 1
            self.queue = [((source, index, p), piece) for p, piece in enumerate(pieces) if _has_loss(piece)]
            self.counts["pieces_without_loss_skipped"] += len(pieces) - len(self.queue)
            misses += 1
            if misses > 10 * sum(n or 0 for n in self.sampler.sizes) + 10_000:
                raise DataError(f"every record is dropped by truncation={self.truncation!r} at "
                                f"seq_len={self.seq_len}; use 'right', 'left' or 'split'")
        return self.queue.pop(0)

    def _encode(self, source: int, index: int) -> Document | Pair:
        return encode_record(self.records[source][index], self.kind, self.tokenizer, self.options)

    def _pieces(self, source: int, index: int) -> tuple[list[Document], bool]:
        """(the pieces a record packs as, whether truncation cut or dropped it)."""
        doc = self._encode(source, index)
        if self.infilling:
            pieces, n = self.infilling.pieces(doc, self.truncation, (self.sampler.seed, source, index))
            return pieces, len(pieces) != 1 or n > self.infilling.raw_len
        pieces = fit_to_length(doc, self.seq_len, self.truncation)
        return pieces, len(pieces) != 1 or len(pieces[0]) != len(doc)

    def _count(self, row: dict[str, np.ndarray], sources: list[int]) -> None:
        segments = row["segment_ids"]
        real = int((segments > 0).sum())
        self.counts["rows"] += 1
        self.counts["real_tokens"] += real
        self.counts["padding_tokens"] += self.seq_len - real
        if self.kind == "pref":
            self.tokens[sources[0]] += real
            return
        for segment, source in enumerate(sources, 1):
            self.tokens[source] += int((segments == segment).sum())

    # -- bookkeeping -------------------------------------------------------------------------
    def token_counts(self) -> dict[str, int]:
        return {s.name: n for s, n in zip(self.specs, self.tokens)}

    def stats(self) -> dict[str, int]:
        stats = {k: v for k, v in self.counts.items() if ":" not in k}
        stats["passes"] = self.sampler.pass_index + 1
        return dict(sorted(stats.items()))

    def get_state(self) -> dict:
        return {"version": STATE_VERSION, **self._layout(), "sources": [s.name for s in self.specs],
                "sizes": list(self.sampler.sizes), "sampler": self.sampler.get_state(),
                "buffer": [list(k) for k in self.packer.keys()], "queue": [list(k) for k, _ in self.queue],
                "tokens": list(self.tokens), "counts": dict(self.counts)}

    def set_state(self, state: dict) -> None:
        names = [s.name for s in self.specs]
        if state.get("version") != STATE_VERSION:
            raise DataError(f"data iterator state version {state.get('version')} != {STATE_VERSION}")
        for key, value in self._layout().items():  # documents are addressed by piece: these must agree
            if state.get(key) != value:
                raise DataError(f"data iterator state was saved with {key}={state.get(key)!r}, "
                                f"this run has {value!r}; it cannot resume exactly")
        if state["sources"] != names or state["sizes"] != list(self.sampler.sizes):
            raise DataError(f"data iterator state was saved for sources {state['sources']} with "
                            f"{state['sizes']} records; this config has {names} with {self.sampler.sizes}")
        self.sampler.set_state(state["sampler"])
        pieces: dict[tuple[int, int], list[Document]] = {}  # a split record is encoded once
        self.packer.buffer = [self._piece(k, pieces) for k in state["buffer"]]
        self.queue = [self._piece(k, pieces) for k in state["queue"]]
        self.tokens = list(state["tokens"])
        self.counts.clear()
        self.counts.update(state["counts"])

    def _layout(self) -> dict:
        layout = {"kind": self.kind, "seq_len": self.seq_len, "truncation": self.truncation,
                  "seed": self.sampler.seed, "tokenizer": self.tokenizer.fingerprint()}
        if self.infilling:  # only when on: states saved before the key existed still resume
            layout["blank_infilling"] = self.infilling.describe()
        return layout

    def _piece(self, key, cache: dict) -> tuple[tuple, Document]:
        source, index, piece = key
        if (source, index) not in cache:
            cache[source, index] = self._pieces(source, index)[0]
        return (source, index, piece), cache[source, index][piece]


def _has_loss(doc: Document) -> bool:
    """A piece whose responses were all cut off (a long prompt) would only waste a row."""
    return bool(doc.trained[1:].any())


def _load_all(specs: list[SourceSpec], cfg, kind: str, counts: collections.Counter) -> list[list[Record]]:
    return [load_source(spec, cfg, kind, counts) for spec in specs]


def check_config(cfg, kind: str, seq_len: int, batch_size: int) -> None:
    """Bad settings fail here, naming the key, before any file is read."""
    choices = {"format": ("auto",) + FORMATS, "truncation": ("auto",) + TRUNCATIONS, "text_unit": TEXT_UNITS}
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise ValueError(f"data.{key}={cfg[key]!r}: expected one of {allowed}")
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")
    if seq_len < 2 or batch_size < 1:
        raise ValueError(f"seq_len must be >= 2 and batch_size >= 1, got {seq_len} and {batch_size}")
    if not 0 <= float(cfg.eval_fraction) < 1:
        raise ValueError(f"data.eval_fraction={cfg.eval_fraction}: expected a fraction in [0, 1)")


def build_train_iterator(cfg, tokenizer, kind: str = "lm", seq_len: int = 512, batch_size: int = 8,
                         seed: int = 0, model_family: str | None = None, blank_tokens: BlankTokens | None = None,
                         rows: list[int] | None = None) -> TrainIterator | ShardedIterator:
    """`rows`: the rows of each global batch this process builds (None: all); see data/host_shards.py."""
    check_config(cfg, kind, seq_len, batch_size)
    rows = None if rows is None else checked_rows(rows, batch_size)
    shards = shard_count(cfg.get("shards", 0), batch_size, rows)
    infilling = _infilling(cfg, kind, seq_len, model_family, blank_tokens)
    options = _options(cfg, tokenizer, model_family)
    specs = parse_sources(_train_spec(cfg), "data.train")
    counts = collections.Counter()
    records = _load_all(specs, cfg, kind, counts)
    if cfg.eval is None:
        records = [split_eval(r, s.name, cfg)[0] for r, s in zip(records, specs)]

    def iterator(records, rows_each: int, seed: int, counts) -> TrainIterator:
        return TrainIterator(specs, records, tokenizer, kind, seq_len, rows_each, seed, options,
                             _truncation(cfg, kind), int(cfg.pack_buffer), bool(cfg.shuffle), counts, infilling)

    if shards == 1 and rows in (None, list(range(batch_size))):
        return iterator(records, batch_size, seed, counts)
    rows, per_shard = rows or list(range(batch_size)), batch_size // shards
    iterators = {}
    for s in sorted({r // per_shard for r in rows}):
        shard_counts = collections.Counter()
        mine = [shard_records(r, s, shards, spec.name, lambda spec=spec: load_source(spec, cfg, kind, shard_counts))
                for r, spec in zip(records, specs)]
        iterators[s] = iterator(mine, per_shard, shard_seed(seed, s, shards), shard_counts)
    return ShardedIterator(iterators, shards, batch_size, rows, counts)


# -- evaluation --------------------------------------------------------------------------------
def eval_records(cfg, kind: str) -> list[Record]:
    """The held-out records, in a fixed order: `cfg.eval`, or the split-off part of each source."""
    counts = collections.Counter()
    if cfg.eval is not None:
        specs = parse_sources(cfg.eval, "data.eval")
        return [r for rs in _load_all(specs, cfg, kind, counts) for r in rs]
    specs = parse_sources(_train_spec(cfg), "data.train")
    return [r for rs, s in zip(_load_all(specs, cfg, kind, counts), specs) for r in split_eval(rs, s.name, cfg)[1]]


def build_eval_batches(cfg, tokenizer, kind: str = "lm", seq_len: int = 512, batch_size: int = 8,
                       model_family: str | None = None,
                       blank_tokens: BlankTokens | None = None) -> list[dict[str, np.ndarray]]:
    """Every held-out record once, packed in order; the last batch is filled with padding rows.
    An empty list when there is no eval data (cfg.eval None and eval_fraction 0). With blank
    infilling, record i's spans come from (data.split_seed, i): the same every run."""
    check_config(cfg, kind, seq_len, batch_size)
    infilling = _infilling(cfg, kind, seq_len, model_family, blank_tokens)
    options, pad_id = _options(cfg, tokenizer, model_family), _pad_id(tokenizer)
    records = eval_records(cfg, kind)
    if kind == "pref":
        rows = [row_from_pair(encode_record(r, kind, tokenizer, options), seq_len, pad_id) for r in records]
    elif infilling:
        policy, seed = _truncation(cfg, kind), int(cfg.split_seed)
        docs = (piece for i, r in enumerate(records)
                for piece in infilling.pieces(encode_record(r, kind, tokenizer, options), policy, (seed, i))[0])
        rows = [infilling.row(row) for row in pack_documents(docs, seq_len, int(cfg.pack_buffer), pad_id)]
    else:
        policy = _truncation(cfg, kind)
        docs = (piece for r in records
                for piece in fit_to_length(encode_record(r, kind, tokenizer, options), seq_len, policy)
                if _has_loss(piece))
        rows = list(pack_documents(docs, seq_len, int(cfg.pack_buffer), pad_id))
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        chunk += [empty_row(seq_len, pad_id) for _ in range(batch_size - len(chunk))]
        batches.append(stack_rows(chunk))
    return batches
