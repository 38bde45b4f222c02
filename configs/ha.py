"""Human alignment alone: DPO (or IPO / ORPO / SimPO) on preference pairs from a starting model.

python -m medjax.main --config=configs/ha.py --config.model.init=hf:/models/my-sft-model \
    --config.data.train=prefs.jsonl [--config.ha.loss=orpo] [--config.ha.reference=precomputed]

`data.train` holds preference records: {"conversations" | "prompt" | "question", "chosen",
"rejected"} (medjax/data/formats.py). With no overrides it aligns a scratch model on the embedded
preference pairs, where the chosen answer gives the safe advice (medjax/assets/preference_pairs.py).
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("ha")
    c.ha = stage_section("ha", with_data=False)
    c.data = data_config(train=paths["pref_train"], eval=paths["pref_eval"])
    c.workdir = "runs/ha"
    c.train.steps = 100
    c.train.batch_size = 8
    c.train.seq_len = 128
    c.train.lr = 5e-4
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 50
    c.checkpoint.every = 50
    return c
