"""HuatuoGPT-II's one-stage adaptation (arXiv 2311.09774): raw domain corpora unified into
instruction-output pairs, then ONE training stage over unified data plus SFT data under priority
sampling, loss on the outputs only.

The paper's priorities (a source's draw probability is its priority x its records not yet drawn, so
higher-priority sources drain first and training ends on SFT data; medjax/data/mixture.py):
    web 32, literature 16, encyclopedia 8, books 4, SFT 1 (repeated 3 times).
The paper unifies Chinese and English web pages, papers, encyclopedias and textbooks with an LLM;
here `python -m medjax.data.unify --input=... --generator=http(s)://ENDPOINT|ckpt:DIR` does it.

With no overrides it runs the embedded default: a small unified sample of the embedded corpus
(medjax/assets/recipes/unified/, written by `python -m medjax.assets.build_recipe_data`) plus the
embedded SFT records, on a tiny scratch model, ending with the embedded MedQA benchmark. For real:

python -m medjax.main --config=configs/huatuo2_one_stage.py --config.model.init=hf:/models/baichuan2-7b \
    --config.adapt.data.train='[{"name": "web", "path": "unified/web.jsonl", "priority": 32}, ...]'
"""
from medjax.assets import default_paths
from medjax.assets.build_recipe_data import recipe_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config

PRIORITIES = {"web": 32, "literature": 16, "encyclopedia": 8, "books": 4}  # SFT: 1
SFT_EPOCHS = 3


def get_config():
    paths, recipe = default_paths(), recipe_paths()
    c = training_config("adapt")
    c.workdir = "runs/huatuo2_one_stage"
    sources = [{"name": name, "path": recipe[f"unified/{name}"], "priority": p} for name, p in PRIORITIES.items()]
    sources.append({"name": "sft", "path": paths["sft_train"], "priority": 1, "epochs": SFT_EPOCHS})
    # kind sft: every source is instruction-output pairs, loss on the outputs only (train_on_prompt False)
    c.adapt = stage_section("adapt", data_config(train=sources, eval=paths["sft_eval"]))
    c.adapt.kind = "sft"
    c.adapt.objective = "lm"
    c.train.steps = 240  # about three passes over the sources (each pass: unified data early, SFT late)
    c.train.lr = 2e-3
    c.train.batch_size = 8
    c.train.seq_len = 128
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 80
    c.checkpoint.every = 80
    c.eval.tasks = "medqa"
    c.eval.data_dir = paths["benchmarks_dir"]
    return c
