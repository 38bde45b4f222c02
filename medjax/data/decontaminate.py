"""Finds training records that share long n-grams with benchmark items, and can drop them.

    python -m medjax.data.decontaminate --train=FILES --benchmarks=DIR [--n=13]
        [--report=report.json] [--output=clean.jsonl]

Every string field of a benchmark item (question, options, contexts, ...) is one item's text;
every string field of a training record is that record's text. A record is contaminated when it
shares at least one n-gram (default 13 words; CJK characters count as words) with an item.
Benchmark items shorter than n words cannot match and are counted in the report.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
from typing import Iterable

from medjax.data.ngrams import ngrams, strings_in
from medjax.data.readers import read_file, read_rows, resolve_files

DEFAULT_N = 13


@dataclasses.dataclass
class BenchmarkIndex:
    n: int
    owners: dict[str, str]  # n-gram -> first benchmark item (origin) that has it
    items: int = 0
    too_short: int = 0


def index_benchmarks(spec: str, n: int = DEFAULT_N) -> BenchmarkIndex:
    """All n-grams of every item of every benchmark file under `spec` (a dir, glob or file)."""
    index = BenchmarkIndex(n, {})
    for row, origin in _benchmark_rows(spec):
        grams = set().union(*(ngrams(s, n) for s in strings_in(row)))
        index.items += 1
        if not grams:
            index.too_short += 1
        for g in grams:
            index.owners.setdefault(g, origin)
    return index


def _benchmark_rows(spec: str):
    """Benchmark items; CSV rows are read as plain cells since many benchmark CSVs have no header."""
    for path in resolve_files(spec):
        if path.endswith(".csv"):
            with open(path, encoding="utf-8", newline="") as f:
                for i, cells in enumerate(csv.reader(f)):
                    yield cells, f"{path}:{i + 1}"
        else:
            yield from read_file(path, "paragraph", skip_bad=False, counts=collections.Counter())


def find_contaminated(rows: Iterable[tuple[dict, str]], index: BenchmarkIndex) -> Iterable[dict]:
    """Per contaminated training row: its origin, the benchmark items it overlaps, an example n-gram."""
    for row, origin in rows:
        shared = {g for s in strings_in(row) for g in ngrams(s, index.n) if g in index.owners}
        if shared:
            example = min(shared)
            yield {"origin": origin, "shared_ngrams": len(shared),
                   "benchmark_items": sorted({index.owners[g] for g in shared}), "example": example}


def main(argv):
    from absl import flags

    f = flags.FLAGS
    index = index_benchmarks(f.benchmarks, f.n)
    rows = list(read_rows(f.train, text_unit=f.text_unit))
    found = list(find_contaminated(rows, index))
    bad = {m["origin"] for m in found}
    report = {"n": f.n, "benchmark_items": index.items, "benchmark_items_shorter_than_n": index.too_short,
              "train_records": len(rows), "contaminated_records": len(found), "records": found}
    print(f"{len(found)} of {len(rows)} training records share a {f.n}-gram with "
          f"{index.items} benchmark items")
    for m in found[:20]:
        print(f"  {m['origin']}: {m['shared_ngrams']} shared, e.g. {m['example']!r} ({m['benchmark_items'][0]})")
    if f.report:
        with open(f.report, "w", encoding="utf-8") as out:
            json.dump(report, out, ensure_ascii=False, indent=1)
    if f.output:
        with open(f.output, "w", encoding="utf-8") as out:
            for row, origin in rows:
                if origin not in bad:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{len(rows) - len(bad)} clean records written to {f.output}")


def _define_flags():
    from absl import flags

    flags.DEFINE_string("train", None, "training data: file, glob or directory", required=True)
    flags.DEFINE_string("benchmarks", None, "benchmark files: directory, glob or file", required=True)
    flags.DEFINE_integer("n", DEFAULT_N, "n-gram length in words (CJK: characters)")
    flags.DEFINE_string("report", None, "write the full report here (JSON)")
    flags.DEFINE_string("output", None, "write the clean records here (JSON lines)")
    flags.DEFINE_string("text_unit", "paragraph", "how .txt files split into records: paragraph, line, file")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
