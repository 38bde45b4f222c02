"""Continued pretraining, then instruction tuning from CP's final weights (the CP+IFT paradigm).

With no overrides this is the embedded default: a small LLaMA-style model, the project's own
tokenizer and medical corpus, on a laptop CPU in minutes, ending with a benchmark table.
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("cp,ift")
    c.workdir = "runs/cp_ift"
    c.cp = stage_section("cp", data_config(train=paths["cp_train"], eval=paths["cp_eval"]))
    c.cp.steps = 150
    c.cp.lr = 3e-3
    c.ift = stage_section("ift", data_config(train=paths["sft_train"], eval=paths["sft_eval"]))
    c.ift.parent = "cp"
    c.ift.steps = 100
    c.ift.lr = 1e-3
    c.train.batch_size = 8
    c.train.seq_len = 192  # fits the longest instruction record (174 tokens: a question in the benchmark's shape)
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 50
    c.checkpoint.every = 50
    c.eval.tasks = "medqa"
    c.eval.data_dir = paths["benchmarks_dir"]
    c.eval.chat_template = "as_trained"  # IFT is asked in its chat template, as its records were
    return c
