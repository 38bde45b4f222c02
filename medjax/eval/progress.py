"""Progress lines while a method runs: about twenty per stage, however long the stage is."""
from __future__ import annotations

from typing import Callable


def progress_counter(progress: Callable[[str], None], label: str, updates: int = 20) -> Callable[[int, int], None]:
    """A callback (done, total) that prints "label: done/total" at ~`updates` evenly spaced points."""

    def report(done: int, total: int) -> None:
        step = max(1, total // updates)
        if done == total or done % step == 0:
            progress(f"  {label}: {done}/{total}")

    return report
