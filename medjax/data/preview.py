"""Shows what the model will see: `python -m medjax.data.preview --config=CONFIG [--num=N] [--dump=F.npz]`.

Prints packed rows decoded segment by segment, with the text that carries no loss wrapped in
⟦ ⟧, and writes the arrays (tokens, targets, loss_mask, segment_ids, positions) to an npz.
The config is a medjax config file: a single stage has `data`; a multi-stage one has
`STAGE.data` (pick with --stage). The tokenizer, kind and sequence length come from the config
when it names them (`tokenizer` or an `hf:`/`ckpt:` `model` spec; `kind`; `seq_len`) and can be
given with --tokenizer / --kind / --seq_len.
"""
from __future__ import annotations

import os

import numpy as np

NO_LOSS_OPEN, NO_LOSS_CLOSE = "⟦", "⟧"
# Stage names -> the kind of batches they train on.
_STAGE_KINDS = {"cp": "lm", "pt": "lm", "pretrain": "lm", "ift": "sft", "sft": "sft", "task": "sft",
                "ha": "pref", "dpo": "pref", "align": "pref", "orpo": "pref"}


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
            out.append(text if learned[start] else f"{NO_LOSS_OPEN}{text}{NO_LOSS_CLOSE}")
            start = i
    return "".join(out)


def stage_data(config, stage: str | None):
    """(stage name, the stage's config section) holding `data`."""
    if stage:
        if stage not in config:
            raise KeyError(f"--stage={stage}: the config has no section {stage!r}; sections: {sorted(config)}")
        return stage, config[stage]
    if "data" in config:
        return config.get("stage") or config.get("name") or None, config
    stages = [k for k in config if hasattr(config[k], "get") and "data" in config[k]]
    if not stages:
        raise KeyError(f"the config has no 'data' section (top level or per stage); keys: {sorted(config)}")
    return stages[0], config[stages[0]]


def find_tokenizer_path(config, section) -> str:
    for where in (section, config):
        for key in ("tokenizer", "tokenizer_path"):
            if where.get(key):
                return where[key]
        model = where.get("model")
        spec = model if isinstance(model, str) else (model.get("spec") if hasattr(model, "get") else None)
        if isinstance(spec, str) and spec.split(":", 1)[0] in ("hf", "ckpt"):
            return spec.split(":", 1)[1]
    raise KeyError("the config names no tokenizer (keys 'tokenizer' or an hf:/ckpt: 'model'); pass --tokenizer")


def main(argv):
    from absl import flags

    from medjax.data.pipeline import build_train_iterator
    from medjax.data.tokenizer import load_tokenizer

    f = flags.FLAGS
    config = f.config
    stage, section = stage_data(config, f.stage)
    kind = f.kind or section.get("kind") or _STAGE_KINDS.get((stage or "").lower(), "lm")
    seq_len = f.seq_len or section.get("seq_len") or config.get("seq_len") or 512
    tokenizer_path = f.tokenizer or find_tokenizer_path(config, section)
    if not os.path.isfile(tokenizer_path) and os.path.isdir(tokenizer_path):
        from medjax.data.tokenizer import has_tokenizer

        nested = os.path.join(tokenizer_path, "tokenizer")
        tokenizer_path = nested if not has_tokenizer(tokenizer_path) and os.path.isdir(nested) else tokenizer_path
    tokenizer = load_tokenizer(tokenizer_path)
    family = section.get("model_family") or config.get("model_family")
    it = build_train_iterator(section.data, tokenizer, kind=kind, seq_len=int(seq_len), batch_size=f.num,
                              seed=int(config.get("seed") or 0), model_family=family)
    batch = next(it)
    print(f"stage={stage} kind={kind} seq_len={seq_len} tokenizer={tokenizer_path}")
    print(describe_rows(batch, tokenizer))
    print(f"token counts: {it.token_counts()}")
    print(f"stats: {it.stats()}")
    if f.dump:
        np.savez(f.dump, **batch)
        print(f"arrays written to {f.dump}")


def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "medjax config file", lock_config=False)
    flags.DEFINE_integer("num", 4, "rows to show")
    flags.DEFINE_string("dump", None, "write the rows' arrays to this .npz")
    flags.DEFINE_string("stage", None, "stage section of a multi-stage config (default: the first with data)")
    flags.DEFINE_string("tokenizer", None, "tokenizer path (default: from the config)")
    flags.DEFINE_enum("kind", None, ["lm", "sft", "pref"], "batch kind (default: from the stage)")
    flags.DEFINE_integer("seq_len", None, "row length (default: from the config, else 512)")
    flags.mark_flag_as_required("config")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
