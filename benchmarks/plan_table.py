"""The smallest TPU v5e and v5p slice each real preset trains on, full / LoRA / QLoRA, at seq 2048.

    python benchmarks/plan_table.py [--chips=v5e,v5p] [--presets=llama2-7b,...] [--methods=full,lora,qlora]
        [--tokens_per_chip=4096] [--seq_len=2048] [--timeout=900] [--jobs=1] [--any_version]
        [--table_only] [--dry_run]

Needs libtpu (`pip install -e '.[tpu]'`); every compile is `python -m medjax.plan` in a subprocess (a libtpu
crash ends that row only). Per row: model.init=scratch at the preset's shapes, bf16 compute, remat full,
model.attention at its default, `tokens_per_chip` tokens per chip (2 sequences of 2048; 4 of 1024 where
the model's positions stop at 1024: glm-10b), mesh fsdp = every chip. full: configs/ift.py, fp32 weights
+ AdamW; lora: ift_lora.py on a bf16 base; qlora: ift_qlora.py, NF4 base.

Which slices are compiled: the slices of a chip, smallest first, whose analytic lower bound on bytes per chip
(`lower_bound_bytes`: weights, optimizer state, fp32 gradients, the layer inputs remat keeps) fits its HBM;
compiling stops at the first that fits, so every smaller slice was ruled out by the bound or by the compiler.
Each compile is cached in benchmarks/plan_table.json keyed by (preset, method, topology, batch, code version:
a hash of medjax/*.py as on disk when the run starts, jax and libtpu); re-runs skip cached rows
(`--any_version`: of any version; `--table_only`: the table from the cache alone).
Writes benchmarks/plan_table.md: the table, with MaxText's published MFU for the nearest model size.
The MFU and tokens/s are plan's roofline (no collectives, every matmul at peak): upper bounds.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import fcntl
import hashlib
import importlib.metadata
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import zlib

from medjax.models.config import ModelConfig
from medjax.models.presets import published_config
from medjax.parallel.chips import CHIPS
from medjax.train.flops import layer_matmul_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
PRESETS = ("llama2-7b", "llama2-13b", "llama3-8b", "chatglm-6b", "glm-10b", "chatglm3-6b", "glm4-9b")
METHODS = {"full": "configs/ift.py", "lora": "configs/ift_lora.py", "qlora": "configs/ift_qlora.py"}
# the slice shapes Google sells, smallest first (v5e: v5litepod-1 ... -256; v5p: v5p-8 ... -1024)
SLICES = {"v5e": ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"),
          "v5p": ("2x2x1", "2x2x2", "2x2x4", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8")}
# MaxText's published MFU (bf16, measured on the slice named), AI-Hypercomputer/maxtext:
# README.md "Runtime Performance Results" (v5p table; v5e table, 1x v5e-256 row) and
# getting_started/Run_Llama2.md (Llama2-70b)
MAXTEXT = (("v5e", 16e9, "16B", "v5e-256", 0.6110), ("v5e", 32e9, "32B", "v5e-256", 0.6686),
           ("v5e", 70e9, "Llama2-70b", "v5e-256", 0.57), ("v5p", 32e9, "32B", "v5p-128", 0.6776),
           ("v5p", 64e9, "64B", "v5p-128", 0.7031), ("v5p", 70e9, "Llama2-70b", "v5p-128", 0.65))
GiB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Row:
    """One preset x method on one chip kind; `rows_per_chip` sequences of `seq_len` per chip."""
    preset: str
    method: str
    chip: str
    seq_len: int
    rows_per_chip: int

    def key(self, topology: str, version: str) -> str:
        return f"{self.preset}|{self.method}|{topology}|{self.rows_per_chip}x{self.seq_len}|{version}"


def make_row(preset: str, method: str, chip: str, cfg: ModelConfig, tokens_per_chip: int, seq_len: int) -> Row:
    seq = min(seq_len, cfg.max_position_embeddings)  # glm-10b's learned positions stop at 1024
    return Row(preset, method, chip, seq, max(1, tokens_per_chip // seq))


def plan_flags(row: Row, topology: str) -> list[str]:
    """medjax.plan's command line for `row` on `topology`."""
    chips = math.prod(int(d) for d in topology.split(":")[1].split("x"))
    return [f"--config={METHODS[row.method]}", f"--topology={topology}", "--json",
            "--config.model.init=scratch", f"--config.model.preset={row.preset}", "--config.model.dtype=bfloat16",
            f"--config.model.param_dtype={'float32' if row.method == 'full' else 'bfloat16'}",
            "--config.model.remat=full", f"--config.train.seq_len={row.seq_len}",
            f"--config.train.batch_size={row.rows_per_chip * chips}", "--config.mesh.data=1",
            "--config.mesh.fsdp=-1"]


def lower_bound_bytes(cfg: ModelConfig, method: str, chips: int, rows_per_chip: int, seq_len: int) -> float:
    """Bytes a chip must hold at least, sharded over `chips` (fsdp): full: fp32 weights, Adam's mu and nu,
    and the fp32 gradients the update reads; LoRA: the bf16 base; QLoRA: 4 bits per decoder-Linear weight,
    bf16 for the rest. Plus the bf16 input of every layer that remat=full keeps for the backward."""
    n = cfg.num_params()
    if method == "full":
        state = 16 * n
    elif method == "lora":
        state = 2 * n
    else:
        quantised = cfg.num_layers * layer_matmul_weights(cfg)
        state = 0.5 * quantised + 2 * (n - quantised)
    return state / chips + cfg.num_layers * rows_per_chip * seq_len * cfg.hidden_size * 2


def candidates(row: Row, cfg: ModelConfig) -> list[str]:
    """The topologies worth compiling, smallest first: those whose lower bound fits the chip's HBM."""
    hbm = CHIPS[row.chip].hbm_bytes
    out = []
    for shape in SLICES[row.chip]:
        chips = math.prod(int(d) for d in shape.split("x"))
        if lower_bound_bytes(cfg, row.method, chips, row.rows_per_chip, row.seq_len) <= hbm:
            out.append(f"{row.chip}:{shape}")
    return out


def code_version() -> str:
    """What a compile's figures depend on: the medjax/ sources as they are on disk (committed or not: a hash
    of every .py file), jax and libtpu."""
    digest = hashlib.sha256()
    package = os.path.join(ROOT, "medjax")
    for folder, dirs, files in sorted(os.walk(package)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, package).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read() + b"\0")
    versions = []
    for dist in ("jax", "libtpu"):
        try:
            versions.append(f"{dist}{importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"no-{dist}")
    return "-".join([digest.hexdigest()[:10], *versions])


class Cache:
    """benchmarks/plan_table.json: {"rows": {key: record}}, saved after every compile; several runs (say one
    per chip) may share it: each save re-reads the file under a lock and adds its row."""

    def __init__(self, path: str):
        self.path, self.lock = path, threading.Lock()
        self.rows = self._read()

    def _read(self) -> dict:
        if not os.path.exists(self.path):
            return {}
        with open(self.path) as f:
            try:
                return json.load(f)["rows"]
            except (json.JSONDecodeError, KeyError) as e:
                raise SystemExit(f"{self.path}: not a plan_table cache ({e}); move it aside to start afresh")

    def get(self, key: str, any_version: bool) -> dict | None:
        if key in self.rows:
            return self.rows[key]
        if any_version:  # the newest record of this row at any code version
            stem = key.rsplit("|", 1)[0] + "|"
            found = [r for k, r in self.rows.items() if k.startswith(stem)]
            return max(found, key=lambda r: r.get("date", "")) if found else None
        return None

    def put(self, key: str, record: dict) -> None:
        lock_name = f"plan_table-{zlib.crc32(os.path.abspath(self.path).encode())}.lock"
        with self.lock, open(os.path.join(tempfile.gettempdir(), lock_name), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.rows = {**self._read(), key: record}
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"rows": dict(sorted(self.rows.items()))}, f, indent=1)
                f.write("\n")
            os.replace(tmp, self.path)


def run_plan(flags: list[str], timeout: float) -> dict | None:
    """One `python -m medjax.plan` compile -> the record kept; None when it ran out of time or was killed
    (SIGKILL: the host's out-of-memory killer, say): not cached, another run may finish it."""
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)  # medjax.plan sets its own
    try:
        proc = subprocess.run([sys.executable, "-m", "medjax.plan", *flags], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode == -signal.SIGKILL:
        return None
    if proc.returncode in (0, 1) and proc.stdout.strip():
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        pd = r["per_device"]
        steps_per_s = None if r.get("est_step_s") in (None, 0) else 1 / r["est_step_s"]
        return {"status": "fits" if r["fits"] else "too big", "total_bytes": pd.get("total"),
                "temp_bytes": pd.get("temp"), "state_bytes": pd["params"] + pd["optimizer"] + pd["frozen"],
                "hbm_bytes": r["hbm_bytes_per_device"], "devices": r["devices"], "mesh": r["mesh"],
                "params": r["model"]["params"], "tokens_per_step": r.get("tokens_per_step"),
                "est_mfu": r.get("est_mfu"), "est_step_s": r.get("est_step_s"),
                "tokens_per_s_per_chip": None if steps_per_s is None
                else r["tokens_per_step"] * steps_per_s / r["devices"],
                "compile_s": r.get("compile_s"), "compiler_error": r.get("compiler_error"),
                "libtpu_init_args": r.get("libtpu_init_args")}
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
    return {"status": "crash" if proc.returncode < 0 else "error", "returncode": proc.returncode,
            "message": " | ".join(tail)[-600:]}


def smallest_fit(row: Row, cfg: ModelConfig, cache: Cache, version: str, runner, any_version: bool,
                 log=print) -> tuple[str | None, dict | None]:
    """(topology, record) of the smallest slice that fits; (topology, record) of the row's last compile
    when none did or a compile failed; (None, None) when no slice is even a candidate."""
    last = (None, None)
    for topology in candidates(row, cfg):
        key = row.key(topology, version)
        record = cache.get(key, any_version)
        if record is None:
            log(f"compiling {key}")
            record = runner(plan_flags(row, topology))
            if record is None:
                log(f"timed out or killed {key}")
                return topology, {"status": "timeout"}
            record = {**record, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "version": version}
            cache.put(key, record)
            log(f"{record['status']} {key}")
        last = (topology, record)
        if record["status"] != "too big":  # fits, or a failure that settles nothing about bigger slices
            return last
    return last


def maxtext_nearest(chip: str, params: float) -> str:
    chip_rows = [m for m in MAXTEXT if m[0] == chip]
    _, _, name, where, mfu = min(chip_rows, key=lambda m: abs(math.log(m[1] / params)))
    return f"{100 * mfu:.1f}% ({name}, {where})"


def _cells(topology: str | None, record: dict | None) -> list[str]:
    if record is None:
        return ["not run", "", "", ""]
    status = record["status"]
    if status != "fits":
        what = {"too big": f"none to {topology}", "timeout": f"timeout at {topology}",
                "not compiled": f"not compiled at {topology}"}.get(status)
        return [what or f"{status} at {topology}", "", "", ""]
    gib = f"{record['total_bytes'] / GiB:.1f} / {record['hbm_bytes'] / GiB:.0f}"
    mfu = "-" if record["est_mfu"] is None else f"{100 * record['est_mfu']:.0f}%"
    tps = "-" if record["tokens_per_s_per_chip"] is None else f"{record['tokens_per_s_per_chip']:,.0f}"
    return [topology.split(":")[1] + f" ({record['devices']})", gib, mfu, tps]


def markdown(results: dict, chips: list[str]) -> str:
    """results: {(preset, method): {chip: (row, topology, record)}} -> the README table."""
    head = ["Model", "Method", "Seq x rows/chip"]
    for chip in chips:
        head += [f"{chip} slice (chips)", f"{chip} GiB/chip", f"{chip} MFU", f"{chip} tok/s/chip"]
    head += ["MaxText MFU, nearest size (" + " / ".join(chips) + ")"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (preset, method), per_chip in results.items():
        row = next(iter(per_chip.values()))[0]
        cells = [preset, method, f"{row.seq_len} x {row.rows_per_chip}"]
        params = None
        for chip in chips:
            _, topology, record = per_chip.get(chip, (None, None, None))
            cells += _cells(topology, record)
            params = params or (record or {}).get("params")
        params = params or published_config(preset).num_params()
        cells.append(" / ".join(maxtext_nearest(chip, params) for chip in chips))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def document(results: dict, chips: list[str], args) -> str:
    """benchmarks/plan_table.md: how the table was made, the table, the rows it could not settle."""
    records = [(row, t, r) for per_chip in results.values() for row, t, r in per_chip.values()]
    versions = sorted({r["version"] for _, _, r in records if r and "version" in r})
    open_rows = [f"{row.preset} {row.method} on {row.chip}: "
                 + ("not run" if r is None else f"{r['status']} at {t}" + (f" ({r['message']})" if "message" in r
                                                                         else ""))
                 for row, t, r in records if r is None or r["status"] != "fits"]
    return "\n".join([
        "# Smallest TPU slice per preset and method (medjax.plan)", "",
        "Written by `python benchmarks/plan_table.py` (the compiles are cached in benchmarks/plan_table.json).",
        f"Every row: `python -m medjax.plan` compiling the real train step for the slice with the TPU compiler "
        f"(libtpu, compile-only devices), model.init=scratch at the preset's shapes, bf16 compute, remat full, "
        f"{args.tokens_per_chip} tokens per chip (rows of {args.seq_len}, or of the model's longest: glm-10b "
        "1024), mesh fsdp = all chips. full: fp32 weights + AdamW; lora: rank 8 on attention + MLP, bf16 base; "
        "qlora: the same on an NF4 base. Slice: the smallest that fits (smaller ones ruled out by the analytic "
        "lower bound or by the compiler). GiB/chip: the compiled step's arguments + outputs - aliased + "
        "temporaries, against the chip's HBM. MFU and tok/s/chip: plan's roofline (no collectives, every "
        "matmul at peak; LoRA MFU counts 4 N + adapters per token): an upper bound, not a measurement. "
        "libtpu flags: medjax.plan's default LIBTPU_INIT_ARGS (parallel/tpu_topology.py).",
        "", markdown(results, chips), "",
        "MaxText: published MFU, measured, for the nearest model size: AI-Hypercomputer/maxtext README.md "
        "\"Runtime Performance Results\" (v5e table, 1x v5e-256: 16B 61.10%, 32B 66.86%; v5p table: 32B "
        "v5p-128 67.76%, 64B v5p-128 70.31%) and getting_started/Run_Llama2.md (Llama2-70b: v5p-128 65%, "
        "v5e-256 57%). MaxText publishes no MFU for a 6-13B model; ../shared/PERFORMANCE.md: 46-71% for "
        "dense LLaMA-class models.", "",
        "Code version(s): " + (", ".join(versions) or "-") + ".",
        "Rows not settled: " + ("none." if not open_rows else ""), *[f"- {line}" for line in open_rows], ""])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", default="v5e,v5p")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--tokens_per_chip", type=int, default=4096)
    p.add_argument("--seq_len", type=int, default=2048)
    p.add_argument("--timeout", type=float, default=900, help="seconds per compile")
    p.add_argument("--jobs", type=int, default=1, help="compiles at once")
    p.add_argument("--any_version", action="store_true", help="reuse cached rows of any code version")
    p.add_argument("--table_only", action="store_true", help="compile nothing: the table from cached rows")
    p.add_argument("--dry_run", action="store_true", help="print the candidate slices, compile nothing")
    p.add_argument("--cache", default=os.path.join(HERE, "plan_table.json"))
    p.add_argument("--markdown", default=os.path.join(HERE, "plan_table.md"))
    args = p.parse_args(argv)
    chips = args.chips.split(",")
    for chip in chips:
        if chip not in SLICES:
            p.error(f"--chips: {chip!r} is not one of {sorted(SLICES)}")
    for method in args.methods.split(","):
        if method not in METHODS:
            p.error(f"--methods: {method!r} is not one of {sorted(METHODS)}")
    cache, version = Cache(args.cache), code_version()
    tasks = []
    for preset in args.presets.split(","):
        cfg = published_config(preset)
        for method in args.methods.split(","):
            for chip in chips:
                row = make_row(preset, method, chip, cfg, args.tokens_per_chip, args.seq_len)
                tasks.append((row, cfg))
                if args.dry_run:
                    print(row, candidates(row, cfg))
    if args.dry_run:
        return

    def runner(flags):
        return None if args.table_only else run_plan(flags, args.timeout)

    def settle(task):
        row, cfg = task
        return smallest_fit(row, cfg, cache, version, runner, args.any_version or args.table_only,
                            log=lambda s: print(s, flush=True))

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        found = list(pool.map(settle, tasks))
    results = {}
    for (row, _), (topology, record) in zip(tasks, found):
        if args.table_only and record and record["status"] == "timeout":
            record = {"status": "not compiled"}  # the smaller candidates did not fit (or are not cached)
        results.setdefault((row.preset, row.method), {})[row.chip] = (row, topology, record)
    text = document(results, chips, args)
    with open(args.markdown, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
