"""python -m medjax.plan --config=CONFIG [--config.KEY=VALUE ...] --topology=v5e:4x4 [--stage=NAME] [--json]

Compiles a stage's real train step for a device topology from shapes alone (no weights, no TPU:
TPU slices need libtpu, `pip install -e '.[tpu]'`; `--topology=cpu:N` uses N fake host devices) and
prints the per-device memory against the chip's HBM, the analytic FLOPs per step, a roofline step
time and MFU, and the compile time. Exit 1 when the step does not fit, with what to change.
The work is medjax/train/plan.py.

On a TPU topology, when LIBTPU_INIT_ARGS is unset, plan sets it to
"--xla_tpu_enable_all_reduce_scatter_fusion=false --xla_tpu_enable_data_parallel_all_reduce_opt=false"
(parallel/tpu_topology.DEFAULT_LIBTPU_INIT_ARGS; --json reports the value used as libtpu_init_args):
libtpu 0.0.42.1 aborts compiling glm-10b's full-parameter step over fsdp 4
(rotated_pincer_fusion_emitter.cc:1904) unless its reduce-scatter fusion and data-parallel all-reduce
optimisation are off. Set LIBTPU_INIT_ARGS yourself (even to "") to compile with other flags.
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from medjax.cli_logging import quiet_by_default
from medjax.xla_cpu import prefer_eigen_dots

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "training config file (configs/*.py)", lock_config=True)
flags.DEFINE_string("topology", None, "cpu:N, v4:AxBxC, v5e:AxB, v5p:AxBxC or v6e:AxB (a TPU topology sets "
                    "LIBTPU_INIT_ARGS when it is unset: see above)")
flags.DEFINE_string("stage", None, "stage to plan (default: the config's first stage)")
flags.DEFINE_bool("json", False, "print one JSON object instead of the table")
flags.mark_flags_as_required(["config", "topology"])

GiB = 1 << 30


def _gib(x) -> str:
    if x is None:
        return "-"
    return f"{x / GiB:8.2f} GiB" if abs(x) >= GiB else f"{x / (1 << 20):8.2f} MiB"


def print_report(r: dict) -> None:
    m, pd = r["model"], r["per_device"]
    print(f"plan: stage {r['stage']} on {r['topology']} ({r['devices']} devices), mesh "
          + " x ".join(f"{k} {v}" for k, v in r["mesh"].items()))
    print(f"model: {m['family']}, {m['params'] / 1e9:.2f}B params ({m['trainable'] / 1e6:.1f}M trainable, peft "
          f"{r['peft']}), compute {m['dtype']}, weights {m['param_dtype']}, remat {m['remat']}; batch "
          f"{r['batch_size']} x {r['seq_len']}, grad_accum {r['grad_accum']}")
    print("per device:")
    for key in ("params", "optimizer", "frozen", "batch", "reference", "temp"):
        print(f"  {key:<11}{_gib(pd[key])}")
    print(f"  {'total':<11}{_gib(pd['total'])}  of {_gib(r['hbm_bytes_per_device']).strip()} HBM, margin "
          f"{_gib(r['margin_bytes']).strip()}")
    if r.get("compiler_error"):
        print(f"compiler: {r['compiler_error']}")
    else:
        print(f"model FLOPs per step: {r['model_flops_per_step']:.3e} ({r['tokens_per_step']} tokens; "
              f"+{r['recompute_flops_per_step']:.2e} recomputed)")
        if r["est_step_s"] is not None:
            print(f"roofline: {r['est_step_s']:.3f} s/step (compute {r['compute_s']:.3f} s, HBM "
                  f"{r['memory_s']:.3f} s for {r['hbm_traffic_bytes_per_step'] / 1e9:.1f} GB: arguments + outputs, "
                  f"weights per pass, temporaries twice), MFU {100 * r['est_mfu']:.1f}%")
        print(f"compile: {r['compile_s']:.1f} s" + (f" (LIBTPU_INIT_ARGS={r['libtpu_init_args']!r})"
                                                    if "libtpu_init_args" in r else ""))
    if not r["fits"]:
        print("does not fit; try:\n" + "\n".join(f"  {s}" for s in r["suggestions"]))


def main(argv):
    del argv
    prefer_eigen_dots()  # first: XLA reads XLA_FLAGS when JAX starts its backend
    from medjax.parallel.tpu_topology import TpuNotInstalled, environment_for, parse_topology

    quiet_by_default()
    try:
        topology = parse_topology(FLAGS.topology)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    os.environ.update(environment_for(topology))  # before jax initialises its backends (below)
    from medjax.train.plan import plan

    try:
        report = plan(FLAGS.config, FLAGS.stage, topology)
    except (TpuNotInstalled, ValueError) as e:  # ValueError: config.train.ConfigError and bad values
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if topology.kind != "cpu":
        report["libtpu_init_args"] = os.environ["LIBTPU_INIT_ARGS"]
    if FLAGS.json:
        print(json.dumps(report))
    else:
        print_report(report)
    sys.exit(0 if report["fits"] else 1)


if __name__ == "__main__":
    app.run(main)
