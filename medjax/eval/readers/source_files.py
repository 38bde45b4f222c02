"""Line-aware reading of the file kinds benchmarks ship in (json lines, json documents, csv)."""
from __future__ import annotations

import csv
import json
import re
from typing import Any, Iterator

from medjax.eval.question import BenchmarkFormatError


def read_json_lines(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, object) for each non-blank line."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkFormatError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise BenchmarkFormatError(f"{path}:{line_no}: expected a JSON object per line")
            yield line_no, record


def read_json_document(path: str) -> tuple[Any, str]:
    """The parsed document and its raw text (to find the line of a record for errors)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise BenchmarkFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def line_of_key(text: str, key: str) -> int:
    """Line where `"key":` first appears in a JSON text (1 if absent): good enough for errors."""
    m = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def read_csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """Yields (first line of the row, fields); quoted fields may span lines."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        start = 1
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, row
                start = reader.line_num + 1
        except csv.Error as e:
            raise BenchmarkFormatError(f"{path}:{reader.line_num}: bad CSV ({e})") from None


def require_fields(record: dict, fields: tuple[str, ...], where: str) -> None:
    missing = [k for k in fields if k not in record]
    if missing:
        raise BenchmarkFormatError(
            f"{where}: missing key(s) {missing}; found {sorted(record)}")


def require_text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkFormatError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def read_json_list(path: str) -> list[tuple[int, Any]]:
    """(line, element) for each element of a top-level JSON list, decoded one by one so that an
    error names the line where the bad element starts."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise BenchmarkFormatError(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected a JSON list")
    pos = _skip_space(text, pos + 1)
    items = []
    while pos < len(text) and text[pos] != "]":
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise BenchmarkFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        items.append((line, item))
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            raise BenchmarkFormatError(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected ',' or ']'")
    if pos >= len(text):
        raise BenchmarkFormatError(f"{path}:{text.count(chr(10)) + 1}: unterminated JSON list")
    return items


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
