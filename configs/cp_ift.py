"""Continued pretraining, then instruction tuning from CP's final weights (the CP+IFT paradigm).

With no overrides this is the embedded default: a small LLaMA-style model, the project's own
tokenizer and medical corpus, on a laptop CPU in minutes, ending with a benchmark table.

The end-of-stage benchmark (the embedded MedQA-shaped sample, n=60, chance 0.25, majority 0.32) is scored
two ways in one table: cloze (each option's text scored as the answer to the question asked without its
options; the headline) and loglik (the letter after the lettered options). Measured 2026-12-02 (quiet
2-core CPU, 3 minutes in all): cloze CP 0.37, IFT 0.77; loglik CP 0.23, IFT 0.32 (half its picks "D").
Why cloze leads: the tiny model never binds a letter to its option. Lettered drills (up to 650 steps,
lr up to 1e-2, from CP or scratch, stems quoting the option to pick, one-token letters and answers)
left the letter's loss at ln 4, while a stem naming the letter, or one fixed word marking the right
option, was learnt in 50 steps: matching an option's content is what it cannot learn in minutes. So
most of the IFT multiple-choice records are in the cloze shape (medjax/assets/instruction_records.py);
before they were (2026-12-01, lettered records only) cloze scored CP 0.35, IFT 0.22: IFT had taught
"Answer:" to be followed by a letter.
"""
from medjax.assets import default_paths
from medjax.data.config import data_config
from medjax.train.config import stage_section, training_config


def get_config():
    paths = default_paths()
    c = training_config("cp,ift")
    c.workdir = "runs/cp_ift"
    c.cp = stage_section("cp", data_config(train=paths["cp_train"], eval=paths["cp_eval"]))
    # CP injects the knowledge: at 150 steps (3 passes over the corpus) a cloze of the benchmark's
    # options scored chance (0.30, eval loss 3.0); 450 steps reach 0.55 (tests 0.71, eval loss 0.7)
    c.cp.steps = 450
    c.cp.lr = 3e-3
    c.ift = stage_section("ift", data_config(train=paths["sft_train"], eval=paths["sft_eval"]))
    c.ift.parent = "cp"
    c.ift.steps = 200  # 1.4 passes over the records (3838 drawn of 2658; multiple-choice ones are four fifths)
    c.ift.lr = 1e-3
    c.train.batch_size = 8
    c.train.seq_len = 200  # fits the longest instruction record (196 tokens: a question in the benchmark's shape)
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 50
    c.checkpoint.every = 50
    c.eval.tasks = "medqa"
    c.eval.method = "cloze,loglik"  # one table; the first is the headline (see above)
    c.eval.data_dir = paths["benchmarks_dir"]
    c.eval.chat_template = "as_trained"  # IFT is asked in its chat template, as its records were
    return c
