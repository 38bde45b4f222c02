"""Will a stage fit, and how fast could it run? The stage's real train step, compiled for a device
topology (a TPU slice through libtpu's compile-only devices, or fake CPU devices) from abstract
shapes only: no weights are read (`hf:DIR` reads config.json alone) or allocated.

The step is the one train/stage.py runs, built by the same functions: the model config as
train/model_init.py picks it, PEFT surgery (prepare_trainable), nnx.split by the trainable filter,
make_optimizer, and train/program.py's build_program (shardings, jit, donation), traced inside the
activation-sharding context. `compiled.memory_analysis()` gives the per-device
memory; FLOPs are analytic (train/flops.py); the step time is a roofline estimate (`roofline`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time

import jax
import numpy as np
from flax import nnx

from medjax.checkpoint.hf_model import config_from_hf_dir
from medjax.checkpoint.params_io import read_model_config, resolve_ckpt
from medjax.data.tokenizer import load_tokenizer
from medjax.models.presets import scratch_config
from medjax.models.resize_vocab import new_vocab_size
from medjax.models.registry import family_module
from medjax.parallel.chips import Chip
from medjax.parallel.mesh import make_mesh, state_shardings
from medjax.parallel.rules import activation_sharding
from medjax.parallel.tpu_topology import Topology, topology_devices
from medjax.peft.config import PeftSettings
from medjax.peft.lora import LoRAParam
from medjax.peft.prompt_tuning import is_prompt_tuned
from medjax.specs import parse_spec, resolve_hf_path
from medjax.train.chunked_loss import local_rows
from medjax.train.config import stage_names, validate
from medjax.train.flops import matmul_weights, step_flops
from medjax.train.model_init import default_tokenizer_path
from medjax.train.preference import settings_from_config
from medjax.train.reference import BATCH_KEY, reference_extras
from medjax.train.program import stage_program
from medjax.train.stage import stage_train_config
from medjax.train.trainables import prepare_trainable

_BATCH_DTYPES = {"tokens": np.int32, "targets": np.int32, "loss_mask": np.float32, "segment_ids": np.int32,
                 "positions": np.int32}  # data/packing.py's arrays, [B, T] each


def model_config_of(c):
    """The ModelConfig a stage starting from `model.init` builds, with no weight read: scratch presets
    from models/presets.py, hf:DIR from its config.json, ckpt:DIR from its model_config.json."""
    m = c.model
    settings = dict(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat, attention=m.attention)
    if m.init == "scratch":  # as train/model_init.py's scratch_model: the run's tokenizer sets the special ids
        return scratch_config(m.preset, load_tokenizer(m.tokenizer or default_tokenizer_path()), **settings)
    s = parse_spec(m.init)
    if s.kind == "hf":
        cfg = config_from_hf_dir(resolve_hf_path(s.path)).replace(**settings)
    elif s.kind == "ckpt":
        cfg = read_model_config(resolve_ckpt(s.path)[0]).replace(**settings)
    else:
        raise ValueError(f"config.model.init={m.init!r}: expected scratch, hf:DIR or ckpt:DIR")
    if m.get("resize_vocab") and m.tokenizer:  # models/resize_vocab.py grows embedding and head to the tokenizer
        cfg = cfg.replace(vocab_size=new_vocab_size(cfg.vocab_size, load_tokenizer(m.tokenizer).vocab_size))
    return cfg


def _sharded(state, shardings):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)


def bytes_per_device(tree) -> int:
    """Bytes one device holds of `tree` (ShapeDtypeStructs with shardings), from the shard shapes: the
    largest per device, as with uneven shardings."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


@dataclasses.dataclass
class StepSpec:
    """The jitted train step and abstract arguments of a stage, ready to lower."""
    train_step: object
    state: dict
    frozen: object
    batch: dict
    extras: dict
    mesh: object
    model_cfg: object
    train_cfg: object
    peft: PeftSettings
    num_params: int
    trainable_params: int
    adapter_weights: int
    prompt_tokens: int
    reference_forward: bool


def abstract_stage(c, name: str, mesh) -> StepSpec:
    """The stage's train step over `mesh` and its arguments as shapes with shardings (train/stage.py's
    run_stage, from initial_model to build_program, without weights)."""
    t = stage_train_config(c, name)
    cfg = model_config_of(c)
    holder = {}

    def build():
        model, holder["filter"] = prepare_trainable(c, family_module(cfg.family).build(cfg, nnx.Rngs(t.seed)))
        return model

    model = nnx.eval_shape(build)
    graphdef, params, frozen, program = stage_program(c, name, t, model, holder["filter"], mesh)
    state = program.abstract_state(_sharded(params, program.state_shardings["params"]))
    frozen = _sharded(frozen, program.frozen_shardings)
    extras, reference_forward, batch_keys = {}, False, dict(_BATCH_DTYPES)
    if c[name].kind == "pref":
        settings = settings_from_config(c[name])
        reference_forward = settings.reference in ("copy", "base")
        if settings.reference == "copy":  # reference_extras' frozen copy of the starting weights, as shapes
            whole = nnx.state(model)
            extras = {"preference": settings, "reference_state": _sharded(whole, state_shardings(whole, mesh))}
        else:
            extras = reference_extras(c[name], model)
        if settings.reference == "precomputed":
            batch_keys[BATCH_KEY] = np.float32
    batch = {k: jax.ShapeDtypeStruct((t.batch_size, 2 if k == BATCH_KEY else t.seq_len), dtype,
                                     sharding=program.batch_sharding) for k, dtype in batch_keys.items()}
    peft = PeftSettings.from_config(c)
    count = lambda tree: sum(math.prod(x.shape) for x in jax.tree.leaves(tree))  # noqa: E731
    return StepSpec(train_step=program.train_step, state=state, frozen=frozen, batch=batch, extras=extras, mesh=mesh,
                    model_cfg=cfg, train_cfg=t, peft=peft, num_params=cfg.num_params(),
                    trainable_params=count(params), adapter_weights=count(nnx.state(model, LoRAParam)),
                    prompt_tokens=model.soft_prompt.shape[0] if is_prompt_tuned(model) else 0,
                    reference_forward=reference_forward)


class OutOfMemory(Exception):
    """The TPU compiler refused the step: it needs more HBM than a chip has."""

    def __init__(self, message: str, temp_bytes: int | None):
        super().__init__(message)
        self.temp_bytes = temp_bytes


_SIZE = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _temp_bytes(message: str) -> int | None:
    """The temporaries the compiler asked for, from e.g. "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the
    total memory required for HLO temporaries (26.66G) exceeds available HBM (15.75G)"."""
    m = re.search(r"temporaries \(([\d.]+)([KMGT]?)\)", message)
    return int(float(m.group(1)) * _SIZE[m.group(2)]) if m else None


def compile_step(spec: StepSpec):
    """(compiled, seconds). The step is traced inside the activation-sharding context, as stage.py's
    with_activation_sharding does at its first call."""
    start = time.perf_counter()
    try:
        with activation_sharding(spec.mesh):
            lowered = spec.train_step.lower(spec.state, spec.frozen, spec.batch, spec.extras)
        compiled = lowered.compile()
    except Exception as e:  # the TPU compiler reports a step that cannot fit as RESOURCE_EXHAUSTED
        message = str(e)
        if "RESOURCE_EXHAUSTED" in message or "Ran out of memory" in message:
            raise OutOfMemory(message.strip().splitlines()[0], _temp_bytes(message)) from None
        raise
    return compiled, time.perf_counter() - start


def roofline(model_flops: float, recompute_flops: float, hbm_traffic: float, num_devices: int, chip: Chip) -> dict:
    """Step time = max(compute, memory) per chip: (model + recompute FLOPs) / peak bf16, HBM bytes moved
    / bandwidth. MFU = model FLOPs / (time x peak x chips). A lower bound on time: no collectives,
    no overlap losses, every matmul at peak."""
    compute_s = (model_flops + recompute_flops) / num_devices / chip.peak_bf16_flops
    memory_s = hbm_traffic / chip.hbm_bytes_per_s
    step_s = max(compute_s, memory_s)
    return {"est_step_s": step_s, "compute_s": compute_s, "memory_s": memory_s,
            "est_mfu": model_flops / (step_s * chip.peak_bf16_flops * num_devices)}


def hbm_traffic_bytes(spec: StepSpec, memory: dict) -> int:
    """HBM bytes one chip moves per step, counted as: every argument read once and every output written
    once (weights, optimizer state, frozen weights, batch), the matmul weights of the whole model in the
    compute dtype read once per pass (forward, backward, and the forward again under remat=full) divided
    by the tensor-parallel ways (FSDP gathers full layers onto every chip), and the temporaries written
    and read once. Activations re-read by several ops are not counted: a lower bound."""
    cfg = spec.model_cfg
    passes = 3 + (cfg.remat == "full") + spec.reference_forward
    weights = matmul_weights(cfg) * np.dtype(cfg.dtype).itemsize * passes / spec.mesh.shape["tensor"]
    return int(memory["arguments"] + memory["outputs"] + weights + 2 * memory["temp"])


def suggestions(spec: StepSpec, per_device: dict, hbm: int) -> list[str]:
    """What would make the step fit, the biggest lever first."""
    t, m, cfg = spec.train_cfg, spec.mesh.shape, spec.model_cfg
    n = spec.mesh.devices.size
    out = []
    state = per_device["params"] + per_device["optimizer"] + per_device["frozen"]
    if state > 0.5 * hbm and m["fsdp"] * m["tensor"] < n:
        out.append(f"--config.mesh.data=1 --config.mesh.fsdp=-1: shard weights and optimizer state over all {n} "
                   f"devices (now {m['fsdp'] * m['tensor']}-way)")
    if state > 0.5 * hbm and spec.peft.method == "none":
        out.append("--config.peft.method=lora (or qlora): train adapters; the frozen base needs no optimizer state")
    if cfg.remat != "full":
        out.append(f"--config.model.remat=full: keep no layer activations for the backward (now {cfg.remat!r})")
    rows = t.batch_size // t.grad_accum // (m["data"] * m["fsdp"])
    if rows > 1:
        out.append(f"--config.train.grad_accum={t.grad_accum * 2}: half the rows per micro-batch "
                   f"({rows} per device now)")
    if t.seq_len > 512:
        out.append(f"--config.train.seq_len={t.seq_len // 2}: attention temporaries grow with seq_len^2")
    if not out:
        out.append(f"a topology with more chips than {n}: weights and optimizer state shard over mesh.fsdp")
    return out


def plan(c, name: str | None, topology: Topology) -> dict:
    """Compiles stage `name` (default: the config's first stage) for `topology`; returns the report."""
    validate(c)
    stages = stage_names(c)
    name = name or stages[0]
    if name not in stages:
        raise ValueError(f"--stage={name!r}: the config's stages are {stages} (config.stages)")
    devices = topology_devices(topology)
    mesh = make_mesh(c.mesh.data, c.mesh.fsdp, c.mesh.tensor, devices=devices)
    spec = abstract_stage(c, name, mesh)
    chip = topology.chip
    hbm = chip.hbm_bytes if chip else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // len(devices)
    t, cfg = spec.train_cfg, spec.model_cfg
    per_device = {"params": bytes_per_device(spec.state["params"]), "optimizer": bytes_per_device(
        spec.state["opt_state"]), "frozen": bytes_per_device(spec.frozen), "batch": bytes_per_device(spec.batch),
        "reference": bytes_per_device(spec.extras)}
    report = {"topology": topology.name, "chip": topology.kind, "devices": len(devices), "stage": name,
              "mesh": dict(spec.mesh.shape), "model": {"family": cfg.family, "params": spec.num_params,
                                                       "trainable": spec.trainable_params, "dtype": cfg.dtype,
                                                       "param_dtype": cfg.param_dtype, "remat": cfg.remat},
              "peft": spec.peft.method, "batch_size": t.batch_size, "seq_len": t.seq_len,
              "grad_accum": t.grad_accum, "hbm_bytes_per_device": hbm}
    try:
        compiled, report["compile_s"] = compile_step(spec)
    except OutOfMemory as e:
        held = sum(per_device.values())
        per_device.update(temp=e.temp_bytes, total=None if e.temp_bytes is None else held + e.temp_bytes)
        report.update(fits=False, per_device=per_device, compiler_error=str(e),
                      margin_bytes=None if per_device["total"] is None else hbm - per_device["total"],
                      suggestions=suggestions(spec, per_device, hbm), compile_s=None)
        return report
    ma = compiled.memory_analysis()
    memory = {"arguments": ma.argument_size_in_bytes, "outputs": ma.output_size_in_bytes,
              "aliased": ma.alias_size_in_bytes, "temp": ma.temp_size_in_bytes}
    per_device.update(temp=memory["temp"], compiler=memory,
                      total=memory["arguments"] + memory["outputs"] - memory["aliased"] + memory["temp"])
    rows = t.batch_size // t.grad_accum
    flops = step_flops(cfg, t.batch_size, t.seq_len, full=spec.peft.method == "none",
                       adapter_weights=spec.adapter_weights, prompt_tokens=spec.prompt_tokens,
                       reference_forward=spec.reference_forward, grad_accum=t.grad_accum,
                       loss_chunk=t.get("loss_chunk"), batch_shards=rows // local_rows(rows, spec.mesh))
    fits = per_device["total"] <= hbm
    report.update(fits=fits, per_device=per_device, margin_bytes=hbm - per_device["total"],
                  model_flops_per_step=flops.model, recompute_flops_per_step=flops.recompute,
                  tokens_per_step=flops.tokens, est_step_s=None, est_mfu=None,
                  suggestions=[] if fits else suggestions(spec, per_device, hbm))
    if chip is not None:
        traffic = hbm_traffic_bytes(spec, memory)
        report.update(hbm_traffic_bytes_per_step=traffic,
                      **roofline(flops.model, flops.recompute, traffic, len(devices), chip))
    return report
