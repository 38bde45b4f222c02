"""Regenerates medjax's embedded default data from the knowledge base.

    python -m medjax.assets.build_default_data [--output_dir=DIR] [--seed=0]

Writes, under DIR (default: medjax/assets/default, the committed copy):
  corpus/*.txt                       continued-pretraining documents, one paragraph each,
                                     separated by blank lines
  corpus_eval.txt                    held-out documents (a fixed share of each corpus file)
  sft.jsonl, sft_eval.jsonl          ShareGPT instruction records, train and held out
  pref.jsonl, pref_eval.jsonl        preference pairs, train and held out
  benchmarks/medqa_usmle/sample.jsonl  MedQA-format multiple-choice questions (never trained on)
  tokenizer/tokenizer.model          SentencePiece BPE trained on the corpus and instruction training text

Every random choice comes from a `random.Random` seeded by (seed, artefact name), so the output
is byte-identical on every run and one artefact's templates can change without reshuffling the
others.
"""
from __future__ import annotations

import argparse
import json
import os
import random

from medjax.assets.corpus_text import render_corpus
from medjax.assets.instruction_records import render_sft
from medjax.assets.knowledge import CONDITIONS, validate
from medjax.assets.medqa_questions import render_medqa
from medjax.assets.preference_pairs import render_pref
from medjax.assets.tokenizer_training import train_sentencepiece

DEFAULT_OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default")
EVAL_FRACTION = 0.06
BENCHMARK_QUESTIONS = 60
VOCAB_SIZE = 2048


def build(output_dir: str, seed: int = 0) -> None:
    validate()

    def rng(artefact: str) -> random.Random:
        return random.Random(f"{seed}:{artefact}")

    corpus = render_corpus(CONDITIONS, rng("corpus"))
    corpus_train, corpus_eval = {}, []
    for name, docs in corpus.items():
        corpus_train[name], held_out = split_off(docs, EVAL_FRACTION, rng(f"split:{name}"))
        corpus_eval.extend(held_out)
    sft_train, sft_eval = split_off(render_sft(CONDITIONS, rng("sft")), EVAL_FRACTION,
                                    rng("split:sft"))
    pref_train, pref_eval = render_pref(CONDITIONS, rng("pref"))  # held out by condition and wording
    benchmark = render_medqa(CONDITIONS, BENCHMARK_QUESTIONS, rng("medqa"))

    corpus_dir = os.path.join(output_dir, "corpus")
    _remove_stale_txt(corpus_dir, keep=corpus_train)
    for name, docs in corpus_train.items():
        _write_documents(os.path.join(corpus_dir, name), docs)
    _write_documents(os.path.join(output_dir, "corpus_eval.txt"), corpus_eval)
    _write_jsonl(os.path.join(output_dir, "sft.jsonl"), sft_train)
    _write_jsonl(os.path.join(output_dir, "sft_eval.jsonl"), sft_eval)
    _write_jsonl(os.path.join(output_dir, "pref.jsonl"), pref_train)
    _write_jsonl(os.path.join(output_dir, "pref_eval.jsonl"), pref_eval)
    _write_jsonl(os.path.join(output_dir, "benchmarks", "medqa_usmle", "sample.jsonl"), benchmark)

    training_text = [doc for docs in corpus_train.values() for doc in docs]
    training_text += [turn["value"] for r in sft_train for turn in r["conversations"]]
    # Not the preference pairs: a new design of those would reshuffle the pieces every stage reads.
    model = train_sentencepiece(training_text, VOCAB_SIZE)
    _write_bytes(os.path.join(output_dir, "tokenizer", "tokenizer.model"), model)


def split_off(items: list, fraction: float, rng: random.Random) -> tuple[list, list]:
    """(train, held_out): a random `fraction` (at least one item) held out, order kept."""
    n_eval = max(1, round(len(items) * fraction))
    held = set(rng.sample(range(len(items)), n_eval))
    return ([x for i, x in enumerate(items) if i not in held],
            [x for i, x in enumerate(items) if i in held])


def _remove_stale_txt(directory: str, keep) -> None:
    """Drops corpus files an older version of this script wrote under other names."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".txt") and name not in keep:
                os.remove(os.path.join(directory, name))


def _write_documents(path: str, docs: list[str]) -> None:
    for doc in docs:
        if "\n" in doc or not doc.strip():
            raise ValueError(f"{path}: documents must be single non-empty paragraphs: {doc[:80]!r}")
    _write_bytes(path, ("\n\n".join(docs) + "\n").encode("utf-8"))


def _write_jsonl(path: str, records: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR,
                        help="where to write the data (default: the package's committed copy)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.output_dir, args.seed)
    print(f"wrote the default data to {args.output_dir}")


if __name__ == "__main__":
    main()
