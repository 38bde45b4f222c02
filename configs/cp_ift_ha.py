"""The survey's fullest paradigm: continued pretraining -> instruction tuning -> human alignment,
each stage starting from the previous one's final weights.

With no overrides it runs the embedded default (a small LLaMA-style model, the project's own
tokenizer, medical corpus, instructions and preference pairs) on a laptop CPU in minutes, ending
with a benchmark table. On real data: override `model.init` and each stage's `data.train`.
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("cp,ift,ha")
    c.workdir = "runs/cp_ift_ha"
    c.cp = stage_section("cp", data_config(train=paths["cp_train"], eval=paths["cp_eval"]))
    c.cp.steps = 150
    c.cp.lr = 3e-3
    c.ift = stage_section("ift", data_config(train=paths["sft_train"], eval=paths["sft_eval"]))
    c.ift.parent = "cp"
    c.ift.steps = 100
    c.ift.lr = 1e-3
    c.ha = stage_section("ha", data_config(train=paths["pref_train"], eval=paths["pref_eval"]))
    c.ha.parent = "ift"
    c.ha.steps = 60
    c.ha.lr = 2e-4
    c.train.batch_size = 8
    c.train.seq_len = 128
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 30
    c.checkpoint.every = 50
    c.eval.tasks = "medqa"
    c.eval.data_dir = paths["benchmarks_dir"]
    return c
