"""The files that describe a stage directory's model: model_config.json, tokenizer/, lineage.json and
peft_config.json, and what to say when its checkpoints were written for another model."""
from __future__ import annotations

import json
import os

from medjax.checkpoint.params_io import MODEL_CONFIG, TOKENIZER
from medjax.data.vocab import tokenizer_lineage
from medjax.peft.config import PEFT_CONFIG, PeftSettings


def stage_lineage(c, name: str, origin: str, tokenizer, model_cfg) -> dict:
    return {"stage": name, "parent": origin, "tokenizer_fingerprint": tokenizer.fingerprint(),
            **tokenizer_lineage(tokenizer),  # an extended vocabulary also names its base tokenizer
            "model_config": model_cfg.to_dict(), "config": json.loads(c.to_json_best_effort())}


def check_tokenizer(name: str, tokenizer, model_cfg, parent_lineage: dict | None) -> None:
    if tokenizer.vocab_size > model_cfg.vocab_size:
        raise ValueError(f"stage {name}: tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has "
                         f"{model_cfg.vocab_size} rows; set config.model.tokenizer to the model's own tokenizer")
    if parent_lineage and parent_lineage.get("tokenizer_fingerprint") not in (None, tokenizer.fingerprint()):
        raise ValueError(f"stage {name}: tokenizer fingerprint {tokenizer.fingerprint()} differs from the parent "
                         f"stage's {parent_lineage['tokenizer_fingerprint']} (config.model.tokenizer changed?)")


def write_stage_files(c, stage_dir: str, model_cfg, tokenizer, lineage: dict) -> None:
    """After the restore: until then these files describe the model the checkpoints hold."""
    with open(os.path.join(stage_dir, MODEL_CONFIG), "w") as f:
        f.write(model_cfg.to_json())
    tokenizer.save(os.path.join(stage_dir, TOKENIZER))
    with open(os.path.join(stage_dir, "lineage.json"), "w") as f:
        json.dump(lineage, f, indent=2, sort_keys=True, default=str)
    peft = PeftSettings.from_config(c)
    if peft.method != "none":
        peft.save(stage_dir)  # lets ckpt: loading rebuild the adapter graph
    elif os.path.exists(os.path.join(stage_dir, PEFT_CONFIG)):
        os.remove(os.path.join(stage_dir, PEFT_CONFIG))  # left by an earlier PEFT run of this stage


def mismatch_hint(stage_dir: str, model_cfg) -> str:
    """What to tell a run whose checkpoints were written for another model or optimizer."""
    path = os.path.join(stage_dir, MODEL_CONFIG)
    changed = ""
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        now = json.loads(model_cfg.to_json())  # as the file holds it (lists, not tuples)
        diffs = [f"{k}: saved {saved.get(k)!r}, configured {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                 if saved.get(k) != now.get(k)]
        changed = f" ({'; '.join(diffs)})" if diffs else " (the same model; the PEFT or optimizer settings differ)"
    return (f"The checkpoints were written for the model in {path}{changed}, the adapters in "
            f"{os.path.join(stage_dir, PEFT_CONFIG)} if any, and the optimizer settings in lineage.json. "
            "Resume with the settings they were written with, or train the new configuration in a new --workdir")
