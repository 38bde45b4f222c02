"""Continued pretraining (knowledge injection): packed raw text, loss on every token.

python -m medjax.main --config=configs/cp.py --config.data.train=my_corpus/ --config.model.init=hf:/models/llama
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("cp")
    c.cp = stage_section("cp", with_data=False)
    c.data = data_config(train=paths["cp_train"], eval=paths["cp_eval"])
    c.workdir = "runs/cp"
    c.train.steps = 200
    c.train.batch_size = 16
    c.train.seq_len = 256
    c.train.lr = 3e-3
    c.train.warmup_steps = 20
    c.train.log_every = 20
    c.train.eval_every = 100
    c.checkpoint.every = 100
    return c
