"""Continued pretraining, then instruction tuning from CP's final weights (the CP+IFT paradigm).

With no overrides this is the embedded default: a small LLaMA-style model, the project's own
tokenizer and medical corpus, on a laptop CPU in minutes, ending with a benchmark table.

Measured 2026-12-01 (benchmark n=60, chance 0.25, majority 0.32): the facts are in (each option's text
scored as the continuation of a corpus-style sentence picks the right one 0.55 after CP, 0.65 after IFT;
0.30 with the former 150 CP steps), but no letter is bound to its option: loglik accuracy is whichever
letter the model favours for every question (CP 0.25, IFT 0.32 = all "D"; 0.17 / 0.15 = mostly "C" in
another run), and IFT picks the right letter at chance (0.23-0.29) even on multiple-choice records it
trained on and on reading questions whose stem states the answer. Neither 300 IFT steps at lr 1e-3 or
3e-3, multiple-choice records only, loss on the prompt too, nor quizzes in the CP corpus moved the
letter's loss off ln 4.
Measured 2026-12-02 (IFT alone from this CP): the bottleneck is matching an option's content, not the
letter. Lettered drills whose stem quotes the option to pick (single-token options too; up to 650 steps,
lr up to 1e-2, from CP or from scratch, label and answer made one token by the tokenizer) stay at ln 4,
while a stem naming the letter, or one fixed word marking the right option, is learnt in 50 steps.
The cloze method (the question without its options, each option's text scored after "Answer:";
eval.method=cloze) does not show the facts either: CP 0.35, IFT 0.22 (acc_norm 0.32), since the
options' capitalised first words rarely follow a colon in the corpus and IFT follows "Answer:" with a
letter (with the first letter lowercased it picks 0.42-0.43).
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
    c.ift.steps = 200  # most of one pass over the records (multiple-choice ones are three quarters)
    c.ift.lr = 1e-3
    c.train.batch_size = 8
    c.train.seq_len = 200  # fits the longest instruction record (196 tokens: a question in the benchmark's shape)
    c.train.warmup_steps = 10
    c.train.log_every = 10
    c.train.eval_every = 50
    c.checkpoint.every = 50
    c.eval.tasks = "medqa"
    c.eval.data_dir = paths["benchmarks_dir"]
    c.eval.chat_template = "as_trained"  # IFT is asked in its chat template, as its records were
    return c
