"""Readers: a path spec -> rows (dicts) with their origin ("file:line").

A spec is a file (.txt .jsonl .json .csv .parquet), a glob of them, a directory (every such file
in it, sorted), a directory saved by HF `datasets` (`save_to_disk`), or `hf:NAME` (or a bare `owner/name` that
is no local path) for a hub dataset (needs the network; `streaming=True` for large corpora).
Text files are UTF-8 (a leading BOM is accepted). Malformed lines (invalid JSON, bytes that are not
UTF-8, CSV rows whose cell count differs from the header's) raise `DataError` naming file and line,
or, with `skip_bad`, are counted in `counts['bad_records']` and skipped. Faults of a whole file (a
.json document, a CSV header or an unterminated quote, a corrupt parquet file) and a file with no
records are always errors.
"""
from __future__ import annotations

import collections
import csv
import glob
import json
import os
import re
from typing import Iterator

from medjax.data.benchmark_records import benchmark_rows, is_benchmark_spec
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
    if is_benchmark_spec(spec):  # benchmark:TASK:PATH, a benchmark split in its own format
        yield from benchmark_rows(spec)
        return
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
    if path.endswith(".parquet"):
        yield from _read_parquet(path)
        return
    if not path.endswith(SUFFIXES):
        raise DataError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")
    with open(path, "rb") as f:
        if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}:1: UTF-16 text (byte-order mark); save the file as UTF-8")
    bad = _BadRecords(path, skip_bad, counts)
    if path.endswith(".txt"):
        yield from _read_txt(path, text_unit, bad)
    elif path.endswith(".jsonl"):
        yield from _read_jsonl(path, bad)
    elif path.endswith(".json"):
        yield from _read_json(path, bad)
    else:
        yield from _read_csv(path, bad)


class _BadRecords:
    """Raises a record's error, or with `skip_bad` counts it (in total and per file) and goes on."""

    def __init__(self, path: str, skip_bad: bool, counts: collections.Counter):
        self.path, self.skip_bad, self.counts = path, skip_bad, counts

    def __call__(self, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.counts["bad_records"] += 1
        self.counts[f"bad_records:{self.path}"] += 1


def _open_text(path: str, newline: str | None = None):
    # utf-8-sig drops a leading BOM; undecodable bytes become lone surrogates (U+DC80..U+DCFF), so
    # the line that holds them can be named, or skipped, instead of failing the whole file.
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _utf8_error(path: str, text: str, first_line: int) -> str | None:
    m = _NOT_UTF8.search(text)
    if m is None:
        return None
    line = first_line + text.count("\n", 0, m.start())
    return f"{path}:{line}: not valid UTF-8 (byte {ord(m.group()) - 0xDC00:#04x}); save the file as UTF-8"


def _read_txt(path: str, text_unit: str, bad: _BadRecords) -> Iterator[Row]:
    if text_unit not in TEXT_UNITS:
        raise DataError(f"text_unit must be one of {TEXT_UNITS}, got {text_unit!r}")
    with _open_text(path) as f:
        lines = f.read().splitlines()
    for text, line in _text_units(lines, text_unit):
        error = _utf8_error(path, text, line)
        if error:
            bad(error)
            continue
        yield {"text": text.strip() if text_unit == "file" else text}, f"{path}:{line}"


def _text_units(lines: list[str], text_unit: str) -> Iterator[tuple[str, int]]:
    """(text, first line) of each file / line / paragraph."""
    if text_unit == "file":
        text = "\n".join(lines)
        if text.strip():
            yield text, 1
        return
    start, block = None, []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            if block:
                yield "\n".join(block), start
            start, block = None, []
            continue
        if text_unit == "line":
            yield line, lineno
            continue
        start = start or lineno
        block.append(line)
    if block:
        yield "\n".join(block), start


def _read_jsonl(path: str, bad: _BadRecords) -> Iterator[Row]:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            error = _utf8_error(path, line, lineno)
            if error is None:
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as e:
                    error = f"{path}:{lineno}: malformed JSON ({_json_problem(e)})"
            if error:
                bad(error)
                continue
            yield row, f"{path}:{lineno}"


def _json_problem(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at column {e.colno}"
    # Nesting too deep for the parser, or an integer beyond Python's digit limit.
    return "nested too deeply" if isinstance(e, RecursionError) else str(e)[:200]


def _read_json(path: str, bad: _BadRecords) -> Iterator[Row]:
    with _open_text(path) as f:
        text = f.read()
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        first = text.lstrip().split("\n", 1)[0]
        if _parses(first):  # JSON lines saved as .json (e.g. MedMCQA)
            yield from _read_jsonl(path, bad)
            return
        line = e.lineno if isinstance(e, json.JSONDecodeError) else 1
        raise DataError(f"{path}:{line}: malformed JSON ({_json_problem(e)})") from None
    error = _utf8_error(path, text, 1)
    if error:  # one document: no record to skip
        raise DataError(error)
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
    except (ValueError, RecursionError):
        return False


def _read_csv(path: str, bad: _BadRecords) -> Iterator[Row]:
    """A header row, then one record per row; quoted cells may span lines (origins name a row's
    first line). A row whose cell count differs from the header's is a bad record."""
    header = None
    with _open_text(path, newline="") as f:
        # strict: an unterminated quote is an error, not a cell that swallows the rest of the file.
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row:
                    continue
                error = _utf8_error(path, ",".join(row), line)
                if header is None:
                    if error:
                        raise DataError(error)
                    header = _csv_header(path, line, row)
                elif error or len(row) != len(header):
                    bad(error or f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
                else:
                    yield dict(zip(header, row)), f"{path}:{line}"
        except csv.Error as e:
            hint = " (an unterminated quote?)" if "end of data" in str(e) else ""
            raise DataError(f"{path}:{start}: malformed CSV row: {e}{hint}") from None


def _csv_header(path: str, line: int, row: list[str]) -> list[str]:
    duplicates = sorted({name for name in row if row.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}:{line}: the header repeats the column(s) {duplicates}")
    return row


def _read_parquet(path: str) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    for i, row in enumerate(table.to_pylist()):
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
