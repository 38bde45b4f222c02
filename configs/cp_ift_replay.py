"""CP+IFT with general-domain replay: the CP stage draws a share of its documents from general
(non-medical) text, and evaluates medical and general held-out text separately, so forgetting of
the general domain shows as `eval_loss/general` in metrics.jsonl, TensorBoard and the report's
loss plot (`eval_loss/medical` beside it; `eval_loss` is over both sets' tokens together).

The general text is the project's own (medjax/assets/general_text.py, rendered by
`python -m medjax.assets.build_general_data`); replay is a Meditron-style `replay` source of the
mixture (medjax/data/mixture.py): REPLAY of all draws, cycling through the general text.

python -m medjax.main --config=configs/cp_ift_replay.py
python -m medjax.main --config=configs/cp_ift_replay.py --config.cp.data.train=medjax/assets/default/corpus
    # the same without replay: compare the two runs' cp/metrics.jsonl eval_loss/general

Measured 2026-12-01 (CP stage, 150 steps of 8x128 tokens from scratch, before cp_ift moved to 8x192 and a new
tokenizer; the ordering is what to expect, not the digits; both eval losses
7.66 at step 0; eval_loss/<name> at step 150):
    replay share   general   medical
    none            6.26      3.81     (general flat since step 100: 6.24)
    0.10            5.26      4.07
    0.25            4.94      4.46
The general text is new to a scratch model, so replay here teaches it rather than keeps it; from a
general pretrained model (config.model.init=hf:...) the same general eval set measures forgetting.
tests/test_eval_sources.py checks a 20-step version: general 6.36 with replay, 6.54 without.
"""
from medjax.assets import default_paths
from medjax.assets.build_general_data import general_paths
from medjax.train.config import parent_config

REPLAY = 0.1  # share of CP draws from general text


def get_config():
    paths, general = default_paths(), general_paths()
    c = parent_config(__file__, "cp_ift.py")  # its stages, model, IFT stage and benchmark
    c.workdir = "runs/cp_ift_replay"
    c.cp.data.train = [{"name": "medical", "path": paths["cp_train"]},
                       {"name": "general", "path": general["general_train"], "replay": REPLAY}]
    c.cp.data.eval = {"medical": paths["cp_eval"], "general": general["general_eval"]}
    return c
