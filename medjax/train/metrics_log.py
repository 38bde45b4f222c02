"""Where a stage's numbers go: metrics.jsonl, TensorBoard event files and a console line."""
from __future__ import annotations

import json
import os
import sys
import time


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _summary_writer(logdir: str):
    """tensorboardX's SummaryWriter. Importing tensorboardX imports torch when it can (only to accept torch
    tensors, which we never pass): ~3 s per trainer process. Unless torch is already loaded, the import runs
    with torch hidden, and costs ~0.5 s."""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX handles
    try:
        from tensorboardX import SummaryWriter
    finally:
        if hide:
            del sys.modules["torch"]
    return SummaryWriter(logdir)


class MetricsLog:
    """Appends one JSON object per logged step. A run that starts afresh rewrites the file; a resumed one
    drops the lines past the restored step (work lost when the run was killed) and a half-written last line."""

    def __init__(self, stage_dir: str, stage: str, total_steps: int, enabled: bool = True):
        self.stage, self.total_steps, self.enabled = stage, total_steps, enabled
        self.path = os.path.join(stage_dir, "metrics.jsonl")
        self._tb = None
        if enabled:
            self._tb = _summary_writer(os.path.join(stage_dir, "tensorboard"))
        self._start_time = time.time()
        self._start_step = 0

    def start_fresh(self) -> None:
        """No checkpoint was restored: earlier lines describe work that is lost, so they go."""
        if self.enabled and os.path.exists(self.path):
            os.remove(self.path)

    def resume_at(self, step: int) -> None:
        """Forget lines logged after `step` (they belong to work lost when the run was killed)."""
        self._start_step = step
        if not (self.enabled and os.path.exists(self.path)):
            return
        kept = [json.dumps(r, sort_keys=True) + "\n" for r in self._read() if r.get("step", 0) <= step]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(self.path + ".tmp", self.path)

    def _read(self) -> list[dict]:
        """The records; a last line cut short by a kill is dropped with a warning, any other bad line is an error."""
        with open(self.path) as f:
            lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
        records = []
        for i, (n, line) in enumerate(lines):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except ValueError as e:
                if i == len(lines) - 1:
                    print(f"WARNING: {self.path}:{n}: dropping a half-written last line ({e})", flush=True)
                    break
                raise ValueError(f"{self.path}:{n}: not a metrics record ({e}); fix or remove the line") from None
            records.append(record)
        return records

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self._tb.add_scalar(f"{self.stage}/{key}", value, step)
        self._tb.flush()

    def console(self, step: int, record: dict) -> None:
        if not self.enabled:
            return
        done = step - self._start_step
        elapsed = time.time() - self._start_time
        eta = elapsed / max(done, 1) * (self.total_steps - step)
        parts = [f"[{self.stage}] step {step}/{self.total_steps}"]
        for key in ("loss", "eval_loss", "eval_pref_accuracy", "pref_accuracy", "lr", "tokens_per_s"):
            if key in record:
                value = record[key]
                parts.append(f"{key} {value:.3g}" if key in ("lr",) else
                             f"{key} {value:.0f}" if key == "tokens_per_s" else f"{key} {value:.4f}")
        parts.append(f"eta {_fmt_duration(eta)}")
        print("  ".join(parts), flush=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
