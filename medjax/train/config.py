"""The keys of every training config, with defaults. Config files in configs/ start from these.

Every key exists up front, so ml_collections rejects a misspelt `--config.KEY=...` or a value of
the wrong type before anything runs; `validate` checks the values.
"""
from __future__ import annotations

import importlib.util
import os

import ml_collections
from ml_collections import config_dict

from medjax.data.config import KINDS, data_config
from medjax.peft.config import PeftSettings, peft_section

# stage name -> (data kind, objective) when the stage section does not say
STAGE_DEFAULTS = {
    "cp": ("lm", "lm"),    # continued pretraining: packed raw text, loss on every token
    "ift": ("sft", "lm"),  # instruction fine-tuning: loss on responses only
    "ta": ("sft", "lm"),   # task adaptation: a further IFT on one task
    "ha": ("pref", "preference"),  # human alignment: DPO / IPO / ORPO / SimPO (config.ha.loss)
}


def model_section() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.init = "scratch"  # scratch | hf:DIR | ckpt:DIR
    m.tokenizer = config_dict.placeholder(str)  # tokenizer path; default: the init spec's, else the embedded one
    m.preset = "tiny"  # shape of a scratch model (medjax/models/presets.py)
    m.dtype = "float32"  # compute dtype (bfloat16 on TPU/GPU)
    m.param_dtype = "float32"  # master weights
    m.remat = "none"  # none | full | dots | dots_no_batch
    m.attention = "auto"  # auto | xla | splash | cudnn: the attention kernel (medjax/models/attention_kernels.py)
    # grow embedding + head for a tokenizer extended by python -m medjax.data.vocab (models/resize_vocab.py)
    m.resize_vocab = False
    return m


def train_section() -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.steps = 100
    t.batch_size = 8  # sequences per optimizer step (all micro-batches together)
    t.grad_accum = 1  # micro-batches per step
    # tokens per device per LM-head chunk (train/chunked_loss.py): None = 1024 above a 64k vocabulary, else all; 0 = all
    t.loss_chunk = config_dict.placeholder(int)
    t.seq_len = 256
    t.lr = 3e-4
    t.warmup_steps = 10
    t.schedule = "cosine"  # cosine | linear | constant
    t.min_lr_ratio = 0.1
    t.weight_decay = 0.01
    t.clip_norm = 1.0
    t.b1 = 0.9
    t.b2 = 0.95
    t.eps = 1e-8
    t.seed = 0
    t.log_every = 10
    t.eval_every = 50  # 0: evaluate only at the end
    t.eval_batches = 8  # held-out batches per evaluation (at most)
    return t


def alignment_keys(s: ml_collections.ConfigDict) -> None:
    """The keys of a preference (`pref`) stage; formulas in medjax/train/preference.py."""
    s.loss = "dpo"  # dpo | ipo | orpo | simpo
    s.beta = config_dict.placeholder(float)  # None: 0.1 (dpo, ipo, orpo's lambda), 2.0 (simpo)
    s.gamma = 0.5  # simpo's target reward margin
    s.label_smoothing = 0.0  # dpo / simpo: conservative (noisy-label) variant
    s.sft_weight = 0.0  # adds this times the chosen response's mean NLL to any loss
    s.reference = "copy"  # dpo / ipo: copy | base (LoRA adapters off) | precomputed (medjax/train/reference.py)


def stage_section(name: str, data=None, with_data: bool = True) -> ml_collections.ConfigDict:
    """A stage's own keys. Single-stage configs keep their data at `config.data` (with_data=False)."""
    kind, objective = STAGE_DEFAULTS.get(name, ("sft", "lm"))
    s = ml_collections.ConfigDict()
    s.kind = kind  # one of medjax.data.config.KINDS
    s.objective = objective
    s.parent = config_dict.placeholder(str)  # stage whose final weights this one starts from
    s.steps = config_dict.placeholder(int)  # None: train.steps
    s.lr = config_dict.placeholder(float)  # None: train.lr
    if kind == "pref":
        alignment_keys(s)
    if with_data:
        s.data = data if data is not None else data_config()
    return s


def stage_data(c, stage: str):
    """The data section a stage reads: its own (multi-stage configs) or the top-level one."""
    if "data" in c[stage]:
        return c[stage].data
    if "data" in c:
        return c.data
    raise ValueError(f"config: stage {stage!r} has no data section (config.{stage}.data or config.data)")


def training_config(stages: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stages = stages  # comma-separated, in order; --config.stages=ift runs a subset
    c.workdir = "runs/default"  # overridden by --workdir
    c.model = model_section()
    c.train = train_section()
    c.checkpoint = ml_collections.ConfigDict({"every": 50, "keep": 3, "async_save": True})
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.peft = peft_section()  # parameter-efficient fine-tuning: none | lora | qlora | prompt
    # extend the tokenizer before the first stage into WORKDIR/vocab (train/vocab_step.py); corpus:
    # comma-separated files / globs / directories, "" = no extension; add: new pieces (type: the base's)
    c.vocab = ml_collections.ConfigDict({"corpus": "", "add": 256})
    c.export_hf = True  # write WORKDIR/<stage>/hf at the end of each stage
    c.report = True  # write WORKDIR/report/index.html at the end of a run (needs the report extra)
    c.eval = ml_collections.ConfigDict({
        "tasks": "",  # benchmark tasks to run at the end of each stage, e.g. "medqa"
        "data_dir": "",  # benchmark directory (see medjax/eval)
        "method": "loglik",
        "shots": 0,
        "limit": config_dict.placeholder(int),
        "batch_size": 8,
        # "none": bare prompts; "as_trained": wrapped as the stage's training records were
        # (train/benchmarks.py); "auto" (the tokenizer's / family's template) or a template name
        "chat_template": "none",
    })
    return c


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """`get_config()` of a config file, loaded by its path (as ml_collections' --config flag does), so
    neither the working directory nor sys.path matters."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such config file")
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"medjax_config_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"{path}: defines no get_config()")
    return module.get_config()


def parent_config(config_file: str, parent: str) -> ml_collections.ConfigDict:
    """The config that a config file builds on: `parent` is a path relative to the directory of
    `config_file` (the calling config's `__file__`). Config files build on each other only this way,
    never by `import configs.x`, which needs the repository root on sys.path."""
    return load_config_file(os.path.join(os.path.dirname(os.path.abspath(config_file)), parent))


class ConfigError(ValueError):
    pass


def validate(c: ml_collections.ConfigDict) -> None:
    """Value checks that types alone cannot express; each error names its key."""
    def need(cond, key, msg):
        if not cond:
            raise ConfigError(f"config.{key}: {msg}")

    stages = stage_names(c)
    need(stages, "stages", "names no stage")
    for s in stages:
        need(s in c, "stages", f"stage {s!r} has no section config.{s}")
        need(c[s].kind in KINDS, f"{s}.kind", f"{c[s].kind!r} is not one of {', '.join(KINDS)}")
        need((c[s].kind == "pref") == (c[s].objective == "preference"), f"{s}.objective",
             f"{c[s].objective!r}: kind 'pref' trains with objective 'preference' and only it")
        if c[s].kind == "pref":
            validate_alignment(c[s], s)
    t = c.train
    need(t.steps > 0, "train.steps", "must be positive")
    need(t.batch_size > 0, "train.batch_size", "must be positive")
    need(t.get("loss_chunk") is None or t.loss_chunk >= 0, "train.loss_chunk",
         f"{t.get('loss_chunk')} is negative (None: by vocabulary size, 0: no chunking)")
    need(t.grad_accum > 0 and t.batch_size % t.grad_accum == 0, "train.grad_accum",
         f"must divide train.batch_size ({t.batch_size})")
    need(t.seq_len >= 8, "train.seq_len", "must be at least 8")
    need(t.lr > 0, "train.lr", "must be positive")
    need(c.checkpoint.every > 0, "checkpoint.every", "must be positive")
    need(c.checkpoint.keep > 0, "checkpoint.keep", "must be positive")
    if c.get("vocab") and c.vocab.corpus:
        need(c.vocab.add > 0, "vocab.add", f"{c.vocab.add}: expected a positive number of new pieces")
    init = c.model.init
    need(init == "scratch" or init.startswith(("hf:", "ckpt:")), "model.init",
         f"{init!r}: expected scratch, hf:DIR or ckpt:DIR")
    kernels = ("auto", "xla", "splash", "cudnn")  # models/config.py ATTENTION_KERNELS (which imports jax)
    need(c.model.get("attention", "auto") in kernels, "model.attention", f"{c.model.get('attention')!r} is not one of "
         f"{', '.join(kernels)}")
    try:
        PeftSettings.from_config(c)  # peft.method, rank, alpha, dropout, quant, num_virtual_tokens
    except ValueError as e:
        raise ConfigError(str(e)) from None


def validate_alignment(s: ml_collections.ConfigDict, name: str) -> None:
    # imported here: they load jax, and config files should stay cheap to import
    from medjax.train.preference import LOSSES
    from medjax.train.reference import REFERENCES

    def need(cond, key, msg):
        if not cond:
            raise ValueError(f"config.{name}.{key}: {msg}")

    need("loss" in s, "loss", "missing: build the section with stage_section(...) or alignment_keys(...)")
    need(s.loss in LOSSES, "loss", f"{s.loss!r} is not one of {LOSSES}")
    need(s.reference in REFERENCES, "reference", f"{s.reference!r} is not one of {REFERENCES}")
    need(s.beta is None or s.beta > 0, "beta", "must be positive")
    need(0 <= s.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
    need(s.sft_weight >= 0, "sft_weight", "must be non-negative")


def stage_names(c) -> list[str]:
    return [s.strip() for s in str(c.stages).split(",") if s.strip()]
