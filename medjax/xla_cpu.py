"""The command-line tools' XLA:CPU default: dots through Eigen, not YNNPACK.

jaxlib 0.10's XLA:CPU hands f32 dots to YNNPACK. On a 2-core AMD EPYC the bench50m training step
(benchmarks/train_throughput.py) ran 8-11% faster with YNNPACK's fusions off, measured as paired
rounds in one process; its forward, a 128-token forward and a cached decoding step were no slower
either. Off, every dot goes to Eigen; reductions and elementwise fusions lose nothing.

XLA reads XLA_FLAGS once, when JAX starts its first backend, so the tools call `prefer_eigen_dots`
before any JAX computation. A user's own `xla_cpu_experimental_ynn_fusion_type` in XLA_FLAGS wins
(`--xla_cpu_experimental_ynn_fusion_type=individual_dot` brings YNNPACK's dots back). TPU and GPU
compiles ignore the option.
"""
from __future__ import annotations

import os

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"


def prefer_eigen_dots(environ=os.environ) -> bool:
    """Turns XLA:CPU's YNNPACK fusions off in `environ`'s XLA_FLAGS unless it names YNN_OPTION already.
    Returns whether it changed XLA_FLAGS."""
    flags = environ.get("XLA_FLAGS", "")
    if YNN_OPTION in flags:
        return False
    environ["XLA_FLAGS"] = f"{flags} --{YNN_OPTION}=".strip()
    return True
