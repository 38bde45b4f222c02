"""Shows what the model will see: `python -m medjax.data.preview --config=CONFIG [--num=N] [--dump=F.npz]`.

Prints packed rows decoded segment by segment, with the text that carries no loss wrapped in
⟦ ⟧, and writes the arrays (tokens, targets, loss_mask, segment_ids, positions) to an npz.
The config is a training config (configs/*.py); the stage (--stage, default the first of
`config.stages`) gives the data section, kind and sequence length the trainer would use, and the
tokenizer is the one the run would load (`model.tokenizer`, the `hf:` init's, or the embedded
default). --tokenizer / --kind / --seq_len / --model_family override them.
"""
from __future__ import annotations

import json
import os

import numpy as np

NO_LOSS_OPEN, NO_LOSS_CLOSE = "⟦", "⟧"


def describe_rows(batch: dict[str, np.ndarray], tokenizer, num: int | None = None) -> str:
    """Each row's documents decoded, with loss-free tokens wrapped in ⟦ ⟧."""
    lines = []
    rows = batch["tokens"].shape[0] if num is None else min(num, batch["tokens"].shape[0])
    for r in range(rows):
        seg, tokens, loss = batch["segment_ids"][r], batch["tokens"][r], batch["loss_mask"][r]
        pad = int((seg == 0).sum())
        lines.append(f"=== row {r}: {int(seg.max())} documents, {len(seg) - pad} tokens, {pad} padding, "
                     f"{int(loss.sum())} with loss")
        for s in range(1, int(seg.max()) + 1):
            where = np.flatnonzero(seg == s)
            # token t is learned when the previous token's target (t) carries loss
            learned = [False] + [bool(loss[t - 1]) for t in where[1:]]
            lines.append(f"--- segment {s} ({len(where)} tokens)")
            lines.append(_marked_text(tokens[where], learned, tokenizer))
    return "\n".join(lines)


def _marked_text(ids: np.ndarray, learned: list[bool], tokenizer) -> str:
    out, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or learned[i] != learned[start]:
            text = tokenizer.decode(ids[start:i], skip_special_tokens=False)
            if text:  # BOS and other control tokens decode to nothing
                out.append(text if learned[start] else f"{NO_LOSS_OPEN}{text}{NO_LOSS_CLOSE}")
            start = i
    return "".join(out)


def stage_settings(config, stage: str | None) -> dict:
    """What the trainer would build the stage's iterator from: data section, kind, seq_len, seed."""
    from medjax.train.config import stage_data, stage_names

    stage = stage or stage_names(config)[0]
    if stage not in config:
        raise KeyError(f"--stage={stage}: the config has no section {stage!r}")
    return {"stage": stage, "data": stage_data(config, stage), "kind": config[stage].kind,
            "seq_len": config.train.seq_len, "seed": config.train.seed}


def tokenizer_and_family(config) -> tuple[str, str]:
    """The tokenizer path and model family a run of this config would use (without its weights)."""
    from medjax.data.tokenizer import has_tokenizer
    from medjax.train.model_init import default_tokenizer_path

    init, path = str(config.model.init), config.model.tokenizer
    if init == "scratch":
        return path or default_tokenizer_path(), "llama"
    kind, _, directory = init.partition(":")
    family = _family_of(directory)
    if path:
        return path, family
    if kind == "hf" and has_tokenizer(directory):
        return directory, family
    raise KeyError(f"config.model.init={init}: pass --tokenizer (or set config.model.tokenizer)")


def _family_of(directory: str) -> str:
    try:
        with open(os.path.join(directory, "config.json")) as f:
            model_type = json.load(f).get("model_type", "llama")
    except OSError:
        return "llama"
    return {"chatglm": "glm", "glm": "glm", "glm4": "glm4", "mistral": "mistral",
            "qwen2": "qwen2", "baichuan": "baichuan"}.get(model_type, "llama")


def blank_tokens_for(config, data_cfg):
    """The GLM v1 special ids the run's model reads, when the data asks for blank infilling."""
    settings = data_cfg.get("blank_infilling")
    if settings is None or settings.mode == "none":
        return None
    from medjax.data.glm_blank_infilling import blank_tokens_of
    from medjax.specs import parse_spec

    init = str(config.model.init)
    if init == "scratch":
        return None  # a scratch model is LLaMA-style: the pipeline says blank infilling needs GLM v1
    spec = parse_spec(init)
    if spec.kind == "hf":
        from medjax.checkpoint.hf_model import config_from_hf_dir
        from medjax.specs import resolve_hf_path

        return blank_tokens_of(config_from_hf_dir(resolve_hf_path(spec.path)))
    from medjax.checkpoint.params_io import read_model_config, resolve_ckpt

    return blank_tokens_of(read_model_config(resolve_ckpt(spec.path)[0]))


def main(argv):
    from absl import flags

    from medjax.data.pipeline import build_train_iterator
    from medjax.data.tokenizer import load_tokenizer

    f = flags.FLAGS
    settings = stage_settings(f.config, f.stage)
    kind, seq_len = f.kind or settings["kind"], f.seq_len or settings["seq_len"]
    tokenizer_path, family = tokenizer_and_family(f.config) if not f.tokenizer else (f.tokenizer, "llama")
    family = f.model_family or family
    tokenizer = load_tokenizer(tokenizer_path)
    it = build_train_iterator(settings["data"], tokenizer, kind=kind, seq_len=int(seq_len), batch_size=f.num,
                              seed=int(settings["seed"]), model_family=family,
                              blank_tokens=blank_tokens_for(f.config, settings["data"]))
    batch = next(it)
    print(f"stage={settings['stage']} kind={kind} seq_len={seq_len} family={family} tokenizer={tokenizer_path}")
    print(describe_rows(batch, tokenizer))
    print(f"token counts: {it.token_counts()}")
    print(f"stats: {it.stats()}")
    if f.dump:
        np.savez(f.dump, **batch)
        print(f"arrays written to {f.dump}")


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    from medjax.data.config import KINDS

    config_flags.DEFINE_config_file("config", None, "medjax config file", lock_config=False)
    flags.DEFINE_integer("num", 4, "rows to show")
    flags.DEFINE_string("dump", None, "write the rows' arrays to this .npz")
    flags.DEFINE_string("stage", None, "stage of a multi-stage config (default: the first in config.stages)")
    flags.DEFINE_string("tokenizer", None, "tokenizer path (default: the one the run would use)")
    flags.DEFINE_string("model_family", None, "model family for the default chat template (default: the model's)")
    flags.DEFINE_enum("kind", None, list(KINDS), "batch kind (default: from the stage)")
    flags.DEFINE_integer("seq_len", None, "row length (default: from the config, else 512)")
    flags.mark_flag_as_required("config")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
