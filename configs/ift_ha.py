"""Instruction tuning, then human alignment from IFT's final weights (the IFT+HA paradigm).

python -m medjax.main --config=configs/ift_ha.py --config.model.init=hf:/models/llama \
    --config.ift.data.train=sft.jsonl --config.ha.data.train=prefs.jsonl
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("ift,ha")
    c.workdir = "runs/ift_ha"
    c.ift = stage_section("ift", data_config(train=paths["sft_train"], eval=paths["sft_eval"]))
    c.ift.steps = 150
    c.ift.lr = 1e-3
    c.ha = stage_section("ha", data_config(train=paths["pref_train"], eval=paths["pref_eval"]))
    c.ha.parent = "ift"
    c.ha.steps = 60
    c.ha.lr = 1e-3
    c.train.batch_size = 8
    c.train.seq_len = 128
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 30
    c.checkpoint.every = 50
    return c
