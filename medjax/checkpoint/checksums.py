"""checksums.json beside a training checkpoint's items: the sha256 of every file they hold.

Written once the (possibly async) save has finished, so it never slows the step that saves; checked
before a restore. A step without the file (saved by an older medjax, or killed between the save and
the checksums) is accepted unverified.
"""
from __future__ import annotations

import hashlib
import json
import os

CHECKSUMS = "checksums.json"


class Damaged(Exception):
    """A checkpoint's files are missing, unreadable or differ from what was saved."""


def _digests(step_dir: str, items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        for root, dirs, files in os.walk(os.path.join(step_dir, item)):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, step_dir)] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


def write_checksums(step_dir: str, items: tuple[str, ...]) -> None:
    record = {"algorithm": "sha256", "items": list(items), "files": _digests(step_dir, items)}
    path = os.path.join(step_dir, CHECKSUMS)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def verify_checksums(step_dir: str) -> bool:
    """True when every file matches checksums.json, False when the step has none; raises Damaged."""
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            record = json.load(f)
        expected, items = record["files"], tuple(record["items"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Damaged(f"{path} is unreadable ({type(e).__name__}: {e})") from None
    try:
        found = _digests(step_dir, items)
    except OSError as e:
        raise Damaged(f"cannot read {e.filename} ({e.strerror})") from None
    for rel in sorted(set(expected) | set(found)):
        if rel not in found:
            raise Damaged(f"{os.path.join(step_dir, rel)} is missing")
        if rel not in expected:
            raise Damaged(f"{os.path.join(step_dir, rel)} is not in {CHECKSUMS}")
        if found[rel] != expected[rel]:
            raise Damaged(f"{os.path.join(step_dir, rel)} fails its sha256 checksum ({CHECKSUMS})")
    return True
