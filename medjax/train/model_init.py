"""Where a stage's starting weights and tokenizer come from: scratch, hf:DIR, ckpt:DIR or its parent stage."""
from __future__ import annotations

import json
import os

import jax
from flax import nnx

from medjax.checkpoint.hf_model import abstract_model, load_hf_model
from medjax.checkpoint.manager import CheckpointError
from medjax.checkpoint.params_io import load_params_model, tokenizer_dir
from medjax.data.tokenizer import has_tokenizer, load_tokenizer
from medjax.models.presets import scratch_config
from medjax.models.registry import family_module
from medjax.models.resize_vocab import resize_for_tokenizer
from medjax.parallel.mesh import place, state_shardings
from medjax.peft.config import PeftSettings
from medjax.specs import parse_spec, resolve_hf_path


def default_tokenizer_path() -> str:
    from medjax.assets import default_paths

    return default_paths()["tokenizer"]


def scratch_model(model_cfg, tokenizer, seed: int, mesh):
    """A randomly initialised model of `model.preset` (models/presets.py), created directly with its shardings."""
    cfg = scratch_config(model_cfg.preset, tokenizer, dtype=model_cfg.dtype, param_dtype=model_cfg.param_dtype,
                         remat=model_cfg.remat, attention=model_cfg.attention)
    module = family_module(cfg.family)
    graphdef, abstract_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abstract_state, mesh)
    state = jax.jit(lambda: nnx.split(module.build(cfg, nnx.Rngs(seed)))[1], out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def initial_model(c, seed: int, mesh, parent_spec: str | None = None):
    """(model, tokenizer, origin) for a stage: `parent_spec` (a ckpt: of the previous stage) wins
    over `model.init`. The model's variables are placed on `mesh`, except for a QLoRA stage: there
    they stay host numpy arrays until the decoder weights are quantised (peft/quantized.py), so the
    full-precision model never has to fit on the accelerators."""
    m = c.model
    overrides = dict(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat, attention=m.attention)
    on_host = PeftSettings.from_config(c).method == "qlora"
    spec = parent_spec or m.init
    tok_path = m.tokenizer
    if spec == "scratch":
        tokenizer = load_tokenizer(tok_path or default_tokenizer_path())
        return scratch_model(m, tokenizer, seed, mesh), tokenizer, "scratch"
    s = parse_spec(spec)
    if s.kind == "hf":
        directory = resolve_hf_path(s.path)
        model = load_hf_model(directory, on_host=on_host, **overrides)
        own_tok = directory if has_tokenizer(directory) else None
    elif s.kind == "ckpt":
        model, config_dir = load_params_model(s.path, on_host=on_host, **overrides)
        own_tok = tokenizer_dir(config_dir)
    else:
        raise ValueError(f"config.model.init={spec!r}: expected scratch, hf:DIR or ckpt:DIR")
    tok_path = tok_path or own_tok
    if tok_path is None:
        raise FileNotFoundError(f"{spec}: has no tokenizer files; set config.model.tokenizer")
    tokenizer = load_tokenizer(tok_path)
    if m.get("resize_vocab"):  # grow embedding + head for a merged tokenizer (models/resize_vocab.py)
        model = resize_for_tokenizer(model, tok_path, own_tok, on_host=on_host)
    if on_host:  # train/stage.py places the variables after prepare_trainable
        return model, tokenizer, str(spec)
    graphdef, state = nnx.split(model)
    state = place(state, state_shardings(state, mesh))  # works when the mesh spans several hosts
    return nnx.merge(graphdef, state), tokenizer, str(spec)


def finished_stage_spec(stage_dir: str, next_stage: str | None = None) -> str | None:
    """ckpt: spec of a stage directory whose training reached its configured steps (lineage.json's
    config), None when the stage never ran. A stage that stopped part-way is an error: starting the next
    stage from a partial checkpoint must be asked for explicitly (the message says how)."""
    ckpts = os.path.join(stage_dir, "checkpoints")
    steps = sorted(int(d) for d in os.listdir(ckpts) if d.isdigit()) if os.path.isdir(ckpts) else []
    lineage_path = os.path.join(stage_dir, "lineage.json")
    if not steps and not os.path.exists(lineage_path):
        return None
    configured = _configured_steps(stage_dir, lineage_path)
    if steps and steps[-1] >= configured:
        return "ckpt:" + stage_dir
    stage = os.path.basename(stage_dir)
    where = (f"stopped at step {steps[-1]} of its {configured} configured steps (latest checkpoint "
             f"{os.path.join(ckpts, str(steps[-1]))})" if steps else
             f"stopped before its first checkpoint (of {configured} configured steps)")
    start_anyway = (f"; or start {next_stage!r} from it on purpose: --config.{next_stage}.parent= "
                    f"--config.model.init=ckpt:{stage_dir}" if next_stage and steps else "")
    raise CheckpointError(f"parent stage {stage!r} ({stage_dir}) {where}. Finish it first (run its stage "
                          f"again: --config.stages={stage}, or the whole pipeline){start_anyway}")


def _configured_steps(stage_dir: str, lineage_path: str) -> int:
    """The steps the stage was last run with, from the config its lineage.json records."""
    stage = os.path.basename(stage_dir)
    try:
        with open(lineage_path) as f:
            config = json.load(f)["config"]
        return int(config[stage].get("steps") or config["train"]["steps"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{lineage_path}: cannot tell how many steps stage {stage!r} was configured for "
                              f"({type(e).__name__}: {e}); cannot tell whether it finished") from None
