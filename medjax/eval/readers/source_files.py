"""Line-aware reading of the file kinds benchmarks ship in (json lines, json documents, csv).

Files are UTF-8 (a leading BOM is accepted); bytes that are not, invalid JSON and malformed CSV
(strict quoting) raise `BenchmarkFormatError` naming file and line."""
from __future__ import annotations

import csv
import json
import re
from typing import Any, Iterator

from medjax.eval.question import BenchmarkFormatError


def _open_text(path: str, newline: str | None = None):
    # utf-8-sig accepts a leading BOM; undecodable bytes become lone surrogates (U+DC80..U+DCFF)
    # so that _check_utf8 can name the line holding them.
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _check_utf8(path: str, text: str, first_line: int = 1) -> None:
    m = _NOT_UTF8.search(text)
    if m:
        line = first_line + text.count("\n", 0, m.start())
        raise BenchmarkFormatError(
            f"{path}:{line}: not valid UTF-8 (byte {ord(m.group()) - 0xDC00:#04x}); save the file as UTF-8")


def _json_error(path: str, e: Exception, line: int) -> BenchmarkFormatError:
    """`line`: where the text parsed starts; a JSONDecodeError's own line counts from there."""
    if isinstance(e, json.JSONDecodeError):
        return BenchmarkFormatError(f"{path}:{line + e.lineno - 1}: not valid JSON ({e.msg})")
    # Nesting too deep for the parser, or an integer beyond Python's digit limit.
    what = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:200]
    return BenchmarkFormatError(f"{path}:{line}: not valid JSON ({what})")


def read_json_lines(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, object) for each non-blank line."""
    with _open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            _check_utf8(path, line, line_no)
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise _json_error(path, e, line_no) from None
            if not isinstance(record, dict):
                raise BenchmarkFormatError(f"{path}:{line_no}: expected a JSON object per line")
            yield line_no, record


def read_json_document(path: str) -> tuple[Any, str]:
    """The parsed document and its raw text (to find the line of a record for errors)."""
    with _open_text(path) as f:
        text = f.read()
    _check_utf8(path, text)
    try:
        return json.loads(text), text
    except (ValueError, RecursionError) as e:
        raise _json_error(path, e, 1) from None


def line_of_key(text: str, key: str) -> int:
    """Line where `"key":` first appears in a JSON text (1 if absent): good enough for errors."""
    m = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def read_csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """Yields (first line of the row, fields); quoted fields may span lines."""
    with _open_text(path, newline="") as f:
        # strict: an unterminated quote is an error, not a field that swallows the rest of the file.
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    _check_utf8(path, ",".join(row), start)
                    yield start, row
                start = reader.line_num + 1
        except csv.Error as e:
            hint = " (an unterminated quote?)" if "end of data" in str(e) else ""
            raise BenchmarkFormatError(f"{path}:{start}: bad CSV row ({e}){hint}") from None


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
    with _open_text(path) as f:
        text = f.read()
    _check_utf8(path, text)
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
        except (ValueError, RecursionError) as e:
            # raw_decode numbers lines from the start of the whole text
            raise _json_error(path, e, 1 if isinstance(e, json.JSONDecodeError) else line) from None
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
