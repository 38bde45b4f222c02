"""Exports written whole or not at all: a directory is built beside its destination and renamed into place.

`replacing_dir(dst)` yields `.NAME.medjax-partial` in dst's parent; when the block succeeds, the old
`dst` (if any) is renamed to `.NAME.medjax-old`, the new one renamed to `dst`, and only then the old
one deleted, so no file of the previous export survives into the new one (a stale shard index or
tokenizer.json would otherwise win over the new weights). When the block raises, the partial
directory is deleted and `dst` is untouched. A process killed mid-export leaves the partial directory
behind; the next export to the same destination deletes it (and, if killed between the two renames,
puts the old export back first). One export per destination at a time.
"""
from __future__ import annotations

import contextlib
import os
import shutil


def _siblings(dst: str) -> tuple[str, str]:
    parent, name = os.path.split(dst)
    return os.path.join(parent, f".{name}.medjax-partial"), os.path.join(parent, f".{name}.medjax-old")


def check_destination(dst: str, overwrite: bool, what: str = "destination") -> None:
    """Refuses a `dst` that is a file, or a non-empty directory unless `overwrite`."""
    if not os.path.lexists(dst):
        return
    if not os.path.isdir(dst):
        raise FileExistsError(f"{what} {dst}: exists and is not a directory")
    if os.listdir(dst) and not overwrite:
        raise FileExistsError(f"{what} {dst}: exists and is not empty; pass --overwrite (overwrite=True) to "
                              "replace it")


@contextlib.contextmanager
def replacing_dir(dst: str):
    """Yields an empty directory to write into; on success it replaces `dst` (see the module docstring)."""
    dst = os.path.realpath(dst)
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise FileExistsError(f"{dst}: exists and is not a directory")
    partial, old = _siblings(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    _recover(dst, partial, old)
    os.mkdir(partial)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if not os.path.exists(dst):
        os.rename(partial, dst)
        return
    os.rename(dst, old)
    try:
        os.rename(partial, dst)
    except BaseException:
        os.rename(old, dst)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)  # the export is complete; a leftover goes with the next export


def _recover(dst: str, partial: str, old: str) -> None:
    """Cleans up after an export that was killed: its partial directory, and an old export moved aside."""
    if os.path.exists(partial):
        shutil.rmtree(partial)
    if os.path.exists(old):
        if os.path.exists(dst):
            shutil.rmtree(old)
        else:  # killed between the two renames: the old export is the last complete one
            os.rename(old, dst)
