"""The survey's fullest paradigm: continued pretraining -> instruction tuning -> human alignment,
each stage starting from the previous one's final weights.

It is configs/cp_ift.py plus an HA stage (DPO by default, `--config.ha.loss=orpo` etc.). With no
overrides it runs the embedded default (a small LLaMA-style model, the project's own tokenizer,
medical corpus, instructions and preference pairs) on a laptop CPU in minutes, ending with a
benchmark table. On real data: override `model.init` and each stage's `data.train`.
"""
import importlib.util
import os

from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section


def _cp_ift_config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cp_ift.py")
    spec = importlib.util.spec_from_file_location("medjax_configs_cp_ift", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config():
    paths = default_paths()
    c = _cp_ift_config()
    c.stages = "cp,ift,ha"
    c.workdir = "runs/cp_ift_ha"
    c.ha = stage_section("ha", data_config(train=paths["pref_train"], eval=paths["pref_eval"]))
    c.ha.parent = "ift"
    c.ha.steps = 60
    c.ha.lr = 2e-3
    c.train.eval_every = 30
    return c
