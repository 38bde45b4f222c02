"""Medical vocabulary extension: train SentencePiece pieces on a domain corpus and append them to a
base SentencePiece tokenizer (LLaMA-style `tokenizer.model`).

    python -m medjax.data.vocab --base=TOKENIZER --corpus=FILES --add=N --out=DIR

The merged model keeps the base model proto as its prefix: every base id, piece, score and type is
unchanged, new pieces get ids from the base size on, pieces the base already has are skipped.
Scores:
  - BPE: SentencePiece merges the highest-scoring pair first. New pieces score below every base
    piece, in the order the domain model learned them, so the base merges all happen first and
    exactly as before; the new merges then join what the base left apart. Text the new pieces do
    not touch encodes as before, and a new id always expands back to the base encoding.
    Every character of a new piece is in the merged vocabulary (added first if the base lacks it):
    transformers' converter only builds merges between two known pieces.
  - unigram: the domain model's log-probabilities; Viterbi picks new pieces where they score better.
`DIR` gets `tokenizer.model` (with the base directory's `tokenizer_config.json`, special tokens map and
chat template when it has them; its `tokenizer.json` is dropped, transformers rebuilds it) and
`vocab_extension.json` (the base's fingerprint, size and hash, the report): `model.resize_vocab` reads
it to grow the model. medjax's `load_tokenizer` and transformers' LlamaTokenizer / LlamaTokenizerFast
read the directory as they read the base.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil

import numpy as np

EXTENSION_FILE = "vocab_extension.json"
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6  # ModelProto.SentencePiece.Type
_MODEL_TYPES = {1: "unigram", 2: "bpe"}
_WS = "\u2581"  # SentencePiece's whitespace mark
_COPIED = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")  # from a base directory
# base trainer settings the domain model must share, or its pieces would not fit the base's splitting
_SHARED_TRAINER_KEYS = ("split_by_unicode_script", "split_by_whitespace", "split_by_number", "split_digits",
                        "treat_whitespace_as_suffix", "allow_whitespace_only_pieces", "max_sentencepiece_length")


class VocabError(ValueError):
    pass


# -- the base model -------------------------------------------------------------------------------
def base_model_file(base: str) -> str:
    """The SentencePiece file of `base`: a `.model` file, or a directory holding `tokenizer.model`."""
    path = os.path.join(base, "tokenizer.model") if os.path.isdir(base) else base
    if not os.path.isfile(path):
        raise VocabError(f"--base={base}: no SentencePiece model (expected a .model file or a directory "
                         "with tokenizer.model)")
    return path


def load_proto(path: str):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(path, "rb") as f:
        try:
            proto.ParseFromString(f.read())
        except Exception as e:  # protobuf's DecodeError
            raise VocabError(f"{path}: not a SentencePiece model ({e})") from None
    if proto.trainer_spec.model_type not in _MODEL_TYPES:
        raise VocabError(f"{path}: model type {proto.trainer_spec.model_type} is neither unigram nor BPE")
    return proto


def processor(proto, add_dummy_prefix: bool | None = None):
    """A SentencePieceProcessor of `proto` (add_dummy_prefix overrides the normaliser's setting)."""
    import sentencepiece as spm

    if add_dummy_prefix is not None:
        proto = _copy(proto)
        proto.normalizer_spec.add_dummy_prefix = add_dummy_prefix
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


def _copy(proto):
    other = type(proto)()
    other.CopyFrom(proto)
    return other


# -- corpus ---------------------------------------------------------------------------------------
def corpus_lines(specs: list[str]) -> list[str]:
    """Non-blank lines of every record of the corpus files (text, jsonl, json, csv: medjax's readers;
    chat and preference records give all their turns)."""
    from medjax.data.formats import to_record
    from medjax.data.readers import read_rows

    lines = []
    for spec in specs:
        for row, origin in read_rows(spec, text_unit="line"):
            r = to_record(row, origin)
            parts = [r.text] if r.text is not None else [m["content"] for m in r.messages]
            parts += [t for t in (r.chosen, r.rejected) if t]
            lines += [line.strip() for part in parts for line in part.splitlines() if line.strip()]
    if not lines:
        raise VocabError(f"--corpus={','.join(specs)}: no text")
    return lines


def split_heldout(lines: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, held-out): every k-th line is held out, so the slice spans the whole corpus."""
    if not 0 < fraction < 1:
        raise VocabError(f"--heldout={fraction}: expected a fraction in (0, 1)")
    every = max(2, round(1 / fraction))
    return ([x for i, x in enumerate(lines) if i % every != every - 1],
            [x for i, x in enumerate(lines) if i % every == every - 1])


# -- training and merging -------------------------------------------------------------------------
def train_domain_model(lines: list[str], base, vocab_size: int, seed_size: int = 200_000):
    """A SentencePiece model of the base's type and text handling trained on `lines` (at most
    `vocab_size` pieces: a small corpus may give fewer)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    spec, norm = base.trainer_spec, base.normalizer_spec
    options = dict(
        model_type=_MODEL_TYPES[spec.model_type], vocab_size=vocab_size, hard_vocab_limit=False,
        character_coverage=1.0, byte_fallback=False,
        normalization_rule_name="identity" if not norm.precompiled_charsmap else norm.name,
        add_dummy_prefix=norm.add_dummy_prefix, remove_extra_whitespaces=norm.remove_extra_whitespaces,
        # one thread, all sentences, no shuffling: the same corpus gives the same pieces
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, seed_sentencepiece_size=seed_size,
        max_sentence_length=1 << 16, bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
        **{k: getattr(spec, k) for k in _SHARED_TRAINER_KEYS})
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, **options)
    except RuntimeError as e:  # SentencePiece's own message says what to change
        raise VocabError(f"SentencePiece training ({vocab_size} pieces) failed: {e}") from None
    proto = pb.ModelProto()
    proto.ParseFromString(out.getvalue())
    return proto


def new_pieces(base, domain, add: int) -> list[tuple[str, float]]:
    """Up to `add` (piece, domain score) the base lacks, in the domain model's order (its best first);
    for BPE each multi-character piece brings along its characters the base lacks."""
    have = {p.piece for p in base.pieces}
    chosen: dict[str, float] = {}
    candidates = [(p.piece, p.score) for p in domain.pieces if p.type == _NORMAL and p.piece not in have]
    bpe = _MODEL_TYPES[base.trainer_spec.model_type] == "bpe"
    scores = dict(candidates)
    for piece, score in candidates:
        if len(chosen) >= add:
            break
        if piece in chosen:
            continue
        need = [c for c in dict.fromkeys(piece) if bpe and len(piece) > 1 and c not in have and c not in chosen]
        if len(chosen) + len(need) + 1 > add:
            continue
        for c in need:
            chosen[c] = scores.get(c, score)
        chosen[piece] = score
    return list(chosen.items())


def merge(base, pieces: list[tuple[str, float]]):
    """The base proto with `pieces` appended (ids from the base size on); scores: see the module doc."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    merged = _copy(base)
    if _MODEL_TYPES[base.trainer_spec.model_type] == "bpe":
        floor = min(p.score for p in base.pieces if p.type == _NORMAL)
        step = max(1.0, 4 * float(np.spacing(np.float32(abs(floor) * 2 + 1))))  # distinct in float32
        scores = [floor - step * (k + 1) for k in range(len(pieces))]
    else:
        scores = [s for _, s in pieces]
    for (piece, _), score in zip(pieces, scores):
        merged.pieces.append(pb.ModelProto.SentencePiece(piece=piece, score=score, type=_NORMAL))
    merged.trainer_spec.vocab_size = len(merged.pieces)
    if len({p.piece for p in merged.pieces}) != len(merged.pieces):
        raise VocabError("merged model has a duplicate piece")  # new_pieces skips them; a guard
    stored = [np.float32(p.score) for p in merged.pieces[len(base.pieces):]]
    if _MODEL_TYPES[base.trainer_spec.model_type] == "bpe" and any(a <= b for a, b in zip(stored, stored[1:])):
        raise VocabError("new BPE scores are not strictly decreasing in float32")
    return merged


# -- report ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Density:
    tokens: int
    chars: int
    words: int

    @property
    def per_char(self) -> float:
        return self.tokens / max(self.chars, 1)

    @property
    def per_word(self) -> float:
        return self.tokens / max(self.words, 1)


def density(sp, lines: list[str]) -> Density:
    """Tokens per character and per whitespace-separated word (a CJK run without spaces is one word)."""
    return Density(tokens=sum(len(ids) for ids in sp.encode(lines)), chars=sum(len(x) for x in lines),
                   words=sum(len(x.split()) for x in lines))


def report_lines(report: dict) -> list[str]:
    b, a = report["heldout_before"], report["heldout_after"]
    return [
        f"base {report['base']}: {report['base_vocab_size']} pieces; added {report['added']} "
        f"-> {report['vocab_size']}",
        f"held-out slice: {report['heldout_lines']} lines, {b['chars']} characters, {b['words']} words",
        f"tokens per character: {b['per_char']:.4f} -> {a['per_char']:.4f} "
        f"({100 * (a['per_char'] / b['per_char'] - 1):+.1f}%)",
        f"tokens per word:      {b['per_word']:.4f} -> {a['per_word']:.4f}",
    ]


# -- the whole step -------------------------------------------------------------------------------
def file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def extend_vocabulary(base: str, corpus: list[str], add: int, out: str, heldout: float = 0.05,
                      train_size: int | None = None) -> dict:
    """Trains, merges and writes `out`; returns the report (also in out/vocab_extension.json)."""
    from medjax.data.tokenizer import load_tokenizer

    if add < 1:
        raise VocabError(f"--add={add}: expected a positive number of pieces")
    model_file = base_model_file(base)
    base_proto = load_proto(model_file)
    _check_base_dir(base, len(base_proto.pieces))
    train, held = split_heldout(corpus_lines(corpus), heldout)
    # the domain model relearns many pieces the base has: train more, keep the first `add` new ones;
    # while the corpus could give more pieces than were asked for and too few are new, ask for more
    # (every character of the corpus is a piece of it: character_coverage 1.0)
    size = train_size or len(set("".join(train))) + 2 * add + 1000
    while True:
        domain = train_domain_model(train, base_proto, size)
        pieces = new_pieces(base_proto, domain, add)
        if train_size or len(pieces) >= add or len(domain.pieces) < 0.9 * size or size > 1 << 20:
            break
        size *= 2
    merged = merge(base_proto, pieces)
    _write_dir(base, merged, out)
    before, after = density(processor(base_proto), held), density(processor(merged), held)
    report = {
        "base": model_file, "base_vocab_size": len(base_proto.pieces),
        "base_fingerprint": load_tokenizer(base).fingerprint(), "base_model_sha256": file_sha(model_file),
        "model_type": _MODEL_TYPES[base_proto.trainer_spec.model_type], "corpus": list(corpus),
        "added": len(pieces), "vocab_size": len(merged.pieces),
        "heldout_lines": len(held),
        "heldout_before": dict(dataclasses.asdict(before), per_char=before.per_char, per_word=before.per_word),
        "heldout_after": dict(dataclasses.asdict(after), per_char=after.per_char, per_word=after.per_word),
    }
    with open(os.path.join(out, EXTENSION_FILE), "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    return report


def read_extension(tokenizer_dir: str) -> dict | None:
    """The vocab_extension.json of a merged tokenizer directory, None when there is none."""
    path = os.path.join(tokenizer_dir, EXTENSION_FILE) if os.path.isdir(tokenizer_dir) else None
    if path is None or not os.path.exists(path):
        return None
    with open(path) as f:
        info = json.load(f)
    for key in ("base_vocab_size", "base_model_sha256", "base_fingerprint", "vocab_size"):
        if key not in info:
            raise VocabError(f"{path}: lacks {key!r}; rebuild it with python -m medjax.data.vocab")
    return info


def base_proto_of(merged, info: dict, where: str):
    """The base model inside a merged one (its first base_vocab_size pieces), checked byte for byte
    against the base file's hash that vocab_extension.json records."""
    base = _copy(merged)
    del base.pieces[info["base_vocab_size"]:]
    base.trainer_spec.vocab_size = info["base_vocab_size"]
    sha = hashlib.sha256(base.SerializeToString()).hexdigest()[:16]
    if info["base_model_sha256"] != sha:
        raise VocabError(f"{where}: its first {info['base_vocab_size']} pieces are not the base model "
                         f"{info.get('base')} ({EXTENSION_FILE} records sha256 {info['base_model_sha256']}, "
                         f"they hash to {sha})")
    return base


def base_splits(merged, base) -> list[list[int]]:
    """For each appended piece, the base ids the base tokenizer splits its text into."""
    sp = processor(base, add_dummy_prefix=False)  # the piece's own leading whitespace mark stays as is
    return [sp.encode(p.piece.replace(_WS, " ")) for p in merged.pieces[len(base.pieces):]]


def tokenizer_lineage(tokenizer) -> dict:
    """lineage.json fields of an extended tokenizer (the base's fingerprint, sizes); {} for any other."""
    found = [f for f in getattr(tokenizer, "files", ()) if os.path.basename(f) == EXTENSION_FILE]
    if not found:
        return {}
    info = read_extension(os.path.dirname(found[0]))
    return {"base_tokenizer_fingerprint": info["base_fingerprint"],
            "vocab_extension": {k: info.get(k) for k in ("base_vocab_size", "added", "vocab_size", "corpus")}}


def _check_base_dir(base: str, sp_size: int) -> None:
    """A transformers directory whose added tokens sit after the SentencePiece pieces would collide
    with the appended pieces."""
    path = os.path.join(base, "tokenizer_config.json") if os.path.isdir(base) else None
    if path and os.path.exists(path):
        with open(path) as f:
            added = json.load(f).get("added_tokens_decoder", {})
        high = sorted(int(i) for i in added if int(i) >= sp_size)
        if high:
            raise VocabError(f"{path}: added tokens with ids {high[:5]} follow the {sp_size} SentencePiece "
                             "pieces; new pieces would take those ids. Extend a tokenizer without them")


def _write_dir(base: str, merged, out: str) -> None:
    """tokenizer.model, plus the base directory's transformers files when it has them: a bare base model
    stays a bare model, so medjax and transformers read the merged one as they read the base."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(merged.SerializeToString())
    # the base's tokenizer.json is a fast tokenizer of the base pieces: transformers rebuilds it from tokenizer.model
    for name in ("tokenizer.json", EXTENSION_FILE) + _COPIED:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    for name in _COPIED:
        if os.path.isdir(base) and os.path.exists(os.path.join(base, name)):
            shutil.copy2(os.path.join(base, name), os.path.join(out, name))


# -- command line ---------------------------------------------------------------------------------
def main(argv):
    from absl import flags

    f = flags.FLAGS
    if len(argv) > 1:
        raise VocabError(f"unexpected arguments {argv[1:]}")
    report = extend_vocabulary(f.base, f.corpus, f.add, f.out, heldout=f.heldout)
    print("\n".join(report_lines(report)))


def _define_flags():
    from absl import flags

    flags.DEFINE_string("base", None, "base tokenizer: a SentencePiece .model file or a directory with tokenizer.model",
                        required=True)
    flags.DEFINE_list("corpus", None, "corpus files / globs / directories (comma-separated)", required=True)
    flags.DEFINE_integer("add", None, "number of new pieces", required=True)
    flags.DEFINE_string("out", None, "output tokenizer directory", required=True)
    flags.DEFINE_float("heldout", 0.05, "share of corpus lines held out for the report")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
