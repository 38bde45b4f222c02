"""Readers: a path spec -> rows (dicts) with their origin ("file:line").

A spec is a file (.txt .jsonl .json .csv .parquet), a glob of them, a directory (every such file
in it, sorted), a directory saved by HF `datasets` (`save_to_disk`), or `hf:NAME` (or a bare `owner/name` that
is no local path) for a hub dataset (needs the network; `streaming=True` for large corpora).
Malformed lines raise `DataError` naming file and line, or, with `skip_bad`, are counted in
`counts['bad_records']` and skipped. A file with no records is always an error.
"""
from __future__ import annotations

import collections
import csv
import glob
import json
import os
import re
from typing import Iterator

from medjax.data.records import DataError

SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
TEXT_UNITS = ("paragraph", "line", "file")

Row = tuple[dict, str]  # (parsed row, origin)
_HUB_NAME = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_files(spec: str) -> list[str]:
    """The data files a file / glob / directory spec names, in a stable order."""
    if glob.has_magic(spec):
        files = sorted(f for f in glob.glob(spec, recursive=True) if os.path.isfile(f))
        if not files:
            raise DataError(f"data glob {spec!r} matches no files")
        return files
    if os.path.isdir(spec):
        files = sorted(os.path.join(root, name) for root, _, names in os.walk(spec)
                       for name in names if name.endswith(SUFFIXES))
        if not files:
            raise DataError(f"data directory {spec!r} holds no {'/'.join(SUFFIXES)} files")
        return files
    if os.path.isfile(spec):
        return [spec]
    raise DataError(f"data path {spec!r} does not exist (use 'hf:NAME' for a hub dataset)")


def is_hf_dataset(spec: str) -> bool:
    """`hf:NAME`, a directory saved by `datasets`, or an `owner/name` that is no local path."""
    if spec.startswith("hf:"):
        return True
    if os.path.isdir(spec):
        return any(os.path.exists(os.path.join(spec, f))
                   for f in ("dataset_info.json", "dataset_dict.json", "state.json"))
    return not os.path.exists(spec) and bool(_HUB_NAME.fullmatch(spec)) and not spec.endswith(SUFFIXES)


def read_rows(spec: str, text_unit: str = "paragraph", skip_bad: bool = False,
              counts: collections.Counter | None = None, hf_split: str = "train",
              streaming: bool = False) -> Iterator[Row]:
    """All rows of a spec, file after file."""
    counts = counts if counts is not None else collections.Counter()
    if is_hf_dataset(spec):
        yield from _read_hf(spec, hf_split, streaming)
        return
    for path in resolve_files(spec):
        n = 0
        for row in read_file(path, text_unit, skip_bad, counts):
            n += 1
            yield row
        if n == 0 and not counts.get(f"bad_records:{path}"):
            raise DataError(f"{path}: empty file, no records")


def read_file(path: str, text_unit: str, skip_bad: bool, counts: collections.Counter) -> Iterator[Row]:
    if path.endswith(".txt"):
        yield from _read_txt(path, text_unit)
    elif path.endswith(".jsonl"):
        yield from _read_jsonl(path, skip_bad, counts)
    elif path.endswith(".json"):
        yield from _read_json(path, skip_bad, counts)
    elif path.endswith(".csv"):
        yield from _read_csv(path)
    elif path.endswith(".parquet"):
        yield from _read_parquet(path)
    else:
        raise DataError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")


def _read_txt(path: str, text_unit: str) -> Iterator[Row]:
    if text_unit not in TEXT_UNITS:
        raise DataError(f"text_unit must be one of {TEXT_UNITS}, got {text_unit!r}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if text_unit == "file":
        text = "\n".join(lines).strip()
        if text:
            yield {"text": text}, f"{path}:1"
        return
    start, block = None, []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if block:
                yield {"text": "\n".join(block)}, f"{path}:{start}"
            start, block = None, []
            continue
        if text_unit == "line":
            yield {"text": line}, f"{path}:{lineno}"
            continue
        start = start or lineno
        block.append(line)
    if block:
        yield {"text": "\n".join(block)}, f"{path}:{start}"


def _read_jsonl(path: str, skip_bad: bool, counts: collections.Counter) -> Iterator[Row]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if not skip_bad:
                    raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
                counts["bad_records"] += 1
                counts[f"bad_records:{path}"] += 1
                continue
            yield row, f"{path}:{lineno}"


def _read_json(path: str, skip_bad: bool, counts: collections.Counter) -> Iterator[Row]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        first = text.lstrip().split("\n", 1)[0]
        if _parses(first):  # JSON lines saved as .json (e.g. MedMCQA)
            yield from _read_jsonl(path, skip_bad, counts)
            return
        raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if isinstance(data, dict):
        # {"data": [...]} wrappers, or an object keyed by id (PubMedQA style).
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists:
            data = lists[0]
        elif all(isinstance(v, dict) for v in data.values()):
            data = [dict(v, id=k) for k, v in data.items()]
        else:
            data = [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield row, f"{path}[{i}]"


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def _read_csv(path: str) -> Iterator[Row]:
    with open(path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            yield dict(row), f"{path}:{i + 2}"  # line 1 is the header


def _read_parquet(path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield row, f"{path}[{i}]"


def _read_hf(spec: str, split: str, streaming: bool) -> Iterator[Row]:
    import datasets

    name = spec[3:] if spec.startswith("hf:") else spec
    if os.path.isdir(name):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"{name}: no split {split!r}; splits: {sorted(ds)}")
            ds = ds[split]
    else:
        ds = datasets.load_dataset(name, split=split, streaming=streaming)
    for i, row in enumerate(ds):
        yield dict(row), f"{name}[{split}][{i}]"
