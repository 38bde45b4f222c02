"""Instruction fine-tuning: chat records rendered with the chat template, loss on responses only.

python -m medjax.main --config=configs/ift.py --config.data.train=my_sft.jsonl --config.model.init=hf:/models/llama
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("ift")
    c.ift = stage_section("ift", with_data=False)
    c.data = data_config(train=paths["sft_train"], eval=paths["sft_eval"])
    c.workdir = "runs/ift"
    c.train.steps = 150
    c.train.batch_size = 16
    c.train.seq_len = 256
    c.train.lr = 1e-3
    c.train.warmup_steps = 10
    c.train.log_every = 25
    c.train.eval_every = 75
    c.checkpoint.every = 75
    return c
