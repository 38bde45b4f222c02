"""python -m medjax.main --config=configs/cp_ift.py [--config.KEY=VALUE ...] [--workdir=DIR]

Runs the stages the config lists (continued pretraining, instruction tuning, alignment, ...)
through the one trainer. Re-running the same command resumes from the latest checkpoints.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from medjax.cli_logging import quiet_by_default
from medjax.xla_cpu import prefer_eigen_dots

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "training config file (configs/*.py)", lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (default: config.workdir)")
flags.DEFINE_string("coordinator_address", None, "multi-host: host:port of process 0 (else from the environment)")
flags.DEFINE_integer("num_processes", None, "multi-host: number of processes")
flags.DEFINE_integer("process_id", None, "multi-host: this process's index")
flags.mark_flags_as_required(["config"])

# flag -> the environment variable medjax.parallel.distributed reads (a flag wins over the environment)
_DISTRIBUTED_FLAGS = {"coordinator_address": "MEDJAX_COORDINATOR_ADDRESS", "num_processes": "MEDJAX_NUM_PROCESSES",
                      "process_id": "MEDJAX_PROCESS_ID"}


def main(argv):
    del argv
    prefer_eigen_dots()  # first: XLA reads XLA_FLAGS when JAX starts its backend
    from medjax.checkpoint.manager import CheckpointError
    from medjax.parallel.distributed import maybe_initialize
    from medjax.train import preemption
    from medjax.train.config import ConfigError
    from medjax.train.pipeline import run
    from medjax.train.stage import NonFiniteLoss

    quiet_by_default()
    for flag, var in _DISTRIBUTED_FLAGS.items():
        if FLAGS[flag].value is not None:
            os.environ[var] = str(FLAGS[flag].value)
    maybe_initialize()
    try:
        run(FLAGS.config, FLAGS.workdir or FLAGS.config.workdir)
    except preemption.Preempted as e:
        print(f"preempted: {e}; re-run the same command to resume", flush=True)
        sys.exit(0)
    except (ConfigError, NonFiniteLoss, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
