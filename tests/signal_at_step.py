"""python -m tests.signal_at_step SIGNAL STEP [medjax.main flags]: medjax.main that sends itself SIGNAL
right after logging STEP's loss, so a test's kill lands mid-run at a known step, never after the run ended.
Before a SIGKILL it also leaves a half-written metrics line, as a kill during a write would."""
import os
import signal
import sys

from absl import app

from medjax import main as cli
from medjax.train.metrics_log import MetricsLog


def signal_after(sig: int, at_step: int) -> None:
    write = MetricsLog.write

    def write_then_signal(self, record):
        write(self, record)
        if record.get("step") == at_step and "loss" in record:
            if sig == signal.SIGKILL:
                with open(self.path, "a") as f:
                    f.write(f'{{"step": {at_step + 1}, "lo')
            os.kill(os.getpid(), sig)

    MetricsLog.write = write_then_signal


if __name__ == "__main__":
    signal_after(getattr(signal, sys.argv[1]), int(sys.argv[2]))
    app.run(cli.main, argv=[sys.argv[0], *sys.argv[3:]])
