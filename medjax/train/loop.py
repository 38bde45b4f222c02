"""The step loop of a stage, asynchronous: the host never waits for the devices on a step that does not
log, evaluate or save.

Each step's metrics stay on the devices (`LateMetrics`) until a step that needs them: a log step's
metrics are read one step late, after the next step is queued, so the devices never idle while the
host writes a log line; an evaluation or a save reads every pending step first, since it needs this
step's weights anyway. The batches come ready on the devices from the feed's thread (train/feed.py).

The NaN guard with late reads (train/nan_guard.py): a save reads every pending loss first, so no
checkpoint is written after a step whose loss was non-finite; a non-finite loss read late at step n
condemns checkpoint n-1 and any later one, so the checkpoint named as good is one whose weights gave a
finite loss. A non-finite loss stops the run at most one step after the next log step.

Several processes: at each log, eval and save step each process also queues a tiny sum over processes
of its SIGTERM flag and token counts, read with that step's metrics: the logged tokens cover every
process's rows (each builds only its own: per-host data), and all processes stop at the same step
(train/preemption.py).
"""
from __future__ import annotations

import dataclasses
import math
import time

import jax

from medjax.parallel.distributed import sum_over_processes
from medjax.train import preemption
from medjax.train.checkpointing import Progress, StageCheckpoints
from medjax.train.evaluation import evaluate
from medjax.train.nan_guard import loss_not_finite


@dataclasses.dataclass
class StepRun:
    """What the loop runs with: the stage's train settings, jitted steps and where results go."""
    name: str
    t: object  # the stage's train section (steps, log_every, eval_every)
    checkpoint_every: int
    train_step: object  # called in the activation-sharding context
    eval_step: object
    extras: dict
    eval_batches: list
    mesh: object
    ckpts: StageCheckpoints
    log: object  # MetricsLog

    def is_log_step(self, step: int) -> bool:
        return step % self.t.log_every == 0 or step in (1, self.t.steps)

    def evaluate_into(self, step: int, state: dict, frozen, progress: Progress) -> None:
        progress.eval_metrics = evaluate(self.eval_step, state["params"], frozen, self.eval_batches, self.extras,
                                         self.mesh)
        progress.last_eval_loss = progress.eval_metrics.get("eval_loss")
        if step == 0:
            progress.first_eval_loss = progress.last_eval_loss
        self.log.write({"step": step, **progress.eval_metrics})
        self.log.console(step, progress.eval_metrics)


def train_steps(run: StepRun, state: dict, frozen, feed, progress: Progress, data):
    """Runs the feed's steps; returns (state, the data view after the last consumed batch)."""
    t, pending = run.t, LateMetrics(run, progress)
    for fed in feed:
        step = fed.step
        state, metrics = run.train_step(state, frozen, fed.batch, run.extras)
        data = fed.data
        evaluating = bool(run.eval_batches) and ((t.eval_every and step % t.eval_every == 0) or step == t.steps)
        saving = step % run.checkpoint_every == 0 or step == t.steps
        pending.add(step, metrics, fed, syncs=evaluating or saving or run.is_log_step(step))
        if evaluating or saving:
            pending.read(upto=step)
        elif pending.log_step_before(step):  # one step late: `step` is already queued on the devices
            pending.read(upto=step - 1)
        stop = pending.stop_agreed()  # the same answer at the same step on every process
        if stop and not saving:
            pending.read(upto=step)  # a save reads every pending loss first
            saving = True
        if evaluating:
            run.evaluate_into(step, state, frozen, progress)
        if saving:
            run.ckpts.save(step, state, frozen, data.state, progress, force=stop)
        if stop:
            run.ckpts.close()
            run.log.close()
            raise preemption.Preempted(f"stage {run.name}: checkpoint {run.ckpts.step_dir(step)} written after "
                                       "SIGTERM")
    if pending.processes > 1:  # what this process's data iterator built: its share of the rows
        print(f"[{run.name}] process {jax.process_index()}: {data.stats.get('rows', 0)} rows packed, "
              f"{data.stats.get('real_tokens', 0)} tokens", flush=True)
    return state, data


class LateMetrics:
    """Steps' metrics held as device arrays, read in one transfer when a step needs them."""

    def __init__(self, run: StepRun, progress: Progress):
        self.run, self.progress = run, progress
        self.pending: list[tuple] = []  # (step, device metrics, interval tokens, data view, device sums or None)
        self.interval_start, self.interval_tokens = time.time(), 0
        self.processes, self.agreed = jax.process_count(), False

    def add(self, step: int, metrics: dict, fed, syncs: bool) -> None:
        """Holds `step`'s metrics; on a step that `syncs` (log, eval, save) with several processes, also
        queues the sum over processes of [SIGTERM flag, tokens since the last log, tokens per source]."""
        self.interval_tokens += fed.tokens
        sums = None
        if self.processes > 1 and syncs:
            replicas = self.processes * fed.share  # processes that build each row: counted once
            local = [preemption.requested(), self.interval_tokens, *fed.data.token_counts.values()]
            sums = sum_over_processes([x / replicas for x in local])  # float32: exact to 2**24 tokens, 1e-7 beyond
        self.pending.append((step, metrics, self.interval_tokens, fed.data, sums))
        if self.run.is_log_step(step):
            self.interval_tokens = 0

    def stop_agreed(self) -> bool:
        """Whether to stop at this step: one process reads its flag, several the sums read so far."""
        return preemption.requested() if self.processes == 1 else self.agreed

    def log_step_before(self, step: int) -> bool:
        return any(s < step and self.run.is_log_step(s) for s, *_ in self.pending)

    def read(self, upto: int) -> None:
        """Reads the pending steps up to `upto`: stops on a non-finite loss, logs the log steps."""
        taken = [p for p in self.pending if p[0] <= upto]
        self.pending = self.pending[len(taken):]
        logs = []
        for (step, _, tokens, data, _), (metrics, sums) in zip(taken, jax.device_get([(p[1], p[4]) for p in taken])):
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                self._log(logs)
                raise loss_not_finite(self.run.ckpts.ckpts, self.run.name, loss, step)
            self.progress.first_loss = loss if self.progress.first_loss is None else self.progress.first_loss
            self.progress.last_loss = loss
            counts = data.token_counts
            if sums is not None:
                self.agreed = self.agreed or bool(sums[0] > 0)
                tokens, counts = round(float(sums[1])), {k: round(float(v)) for k, v in zip(counts, sums[2:])}
            if self.run.is_log_step(step):
                logs.append((step, metrics, tokens, counts))
        self._log(logs)

    def _log(self, logs: list[tuple]) -> None:
        """Writes the log steps of one read. Their steps finished at unknown times before the read returned, so
        they share one rate: their tokens over the time since the last logged read (each its own would give
        the later steps of a read a time of nearly 0 and rates of millions of tokens per second)."""
        if not logs:
            return
        elapsed = time.time() - self.interval_start
        rate = sum(tokens for _, _, tokens, _ in logs) / max(elapsed, 1e-9)
        for step, metrics, tokens, token_counts in logs:
            record = {"step": step, **{k: float(v) for k, v in metrics.items() if k != "weight"},
                      "tokens_per_s": rate, "tokens": tokens, **{f"tokens/{k}": v for k, v in token_counts.items()}}
            self.run.log.write(record)
            self.run.log.console(step, record)
        self.interval_start = time.time()
