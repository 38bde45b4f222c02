"""AntGLM-Med's procedure (AntGLM-Med-10B, arXiv 2312.01040): three stages, each from the previous one's
final weights, then Verification-of-Choice beside plain log-likelihood on the adapted task.

  cp   general medical knowledge injection: continued pretraining on medical text
  ift  medical instruction tuning on a weighted mixture of question answering, reasoning,
       multiple-choice and conversation records
  ta   task adaptation on one task's training split, read in the benchmark's own file format and
       prompted exactly as the evaluation prompts it (`benchmark:TASK:PATH`, template `plain`:
       medjax/data/benchmark_records.py)

With no overrides it runs the embedded default on a tiny scratch GLM (AntGLM is a GLM) and the
embedded MedQA benchmark, adapting on MedQA-format questions about other conditions
(medjax/assets/build_recipe_data.py). The tiny model learns the task's answer format there (a letter
after "Answer:") but neither the benchmark's facts nor which letter labels which option (given 10x the
steps, ta's loss settles at ln 4 per letter: a uniform guess), so every stage's accuracy stays near
chance: the embedded run shows the procedure, not its gains. For real (PubMedQA as the adapted task):

python -m medjax.main --config=configs/antglm_med.py --config.model.init=hf:/models/glm-10b \
    --config.cp.data.train=corpus/ --config.ift.data.train=ift_mixture.jsonl \
    --config.ta.data.train=benchmark:pubmedqa:../shared/data/benchmarks/pubmedqa/pqal_nontest.json \
    --config.eval.tasks=pubmedqa --config.eval.data_dir=DIR_WITH_ori_pqal_AND_test_ground_truth
"""
from medjax.assets import default_paths
from medjax.assets.build_recipe_data import recipe_paths
from medjax.data.config import data_config
from medjax.train.config import parent_config, stage_section


def get_config():
    paths, recipe = default_paths(), recipe_paths()
    c = parent_config(__file__, "cp_ift.py")  # its cp stage, run settings and end-of-stage benchmark
    c.stages = "cp,ift,ta"
    c.workdir = "runs/antglm_med"
    c.model.preset = "tiny-glm"
    # the whole run in a few CPU minutes: rows are longer than cp_ift.py's (the task's prompts), steps fewer
    c.cp.steps = 60
    # IFT source weights are ours (the paper mixes these record types without publishing weights):
    # multiple-choice and reasoning records are the rarer kinds the benchmark asks for, so they draw more
    ift_sources = [{"name": "qa", "path": recipe["ift/qa"], "weight": 1.0},
                   {"name": "reasoning", "path": recipe["ift/reasoning"], "weight": 2.0},
                   {"name": "multiple_choice", "path": recipe["ift/multiple_choice"], "weight": 2.0},
                   {"name": "conversation", "path": recipe["ift/conversation"], "weight": 1.0}]
    c.ift = stage_section("ift", data_config(train=ift_sources, eval=paths["sft_eval"]))
    c.ift.parent = "cp"
    c.ift.steps = 60
    c.ift.lr = 1e-3
    task_split = [{"name": "medqa_train", "path": f"benchmark:medqa:{recipe['medqa_train']}"}]
    c.ta = stage_section("ta", data_config(train=task_split, template="plain", eval_fraction=0.1))
    c.ta.parent = "ift"
    c.ta.steps = 25  # two passes over the 108 training questions (a tenth is held out for eval loss)
    c.ta.lr = 5e-4
    c.train.seq_len = 208  # a task prompt is at most 192 tokens of the embedded tokenizer, + BOS, label, EOS
    c.train.eval_every = 30
    c.train.eval_batches = 4
    c.eval.method = "loglik,voc"  # one table: VoC beside log-likelihood (medjax/train/benchmarks.py)
    c.eval.max_reason_tokens = 16  # VoC arguments; the paper's model writes longer ones
    c.eval.batch_size = 64  # VoC decodes 4 arguments per question: wide batches, few compiled shapes
    return c
