"""Vocabulary extension -> continued pretraining -> instruction tuning (configs/cp_ift.py with
`config.vocab`), in one command:

    python -m medjax.main --config=configs/vocab_cp_ift.py

Before CP, the run extends the base tokenizer (model.tokenizer, else model.init's own, else the embedded
default's) with `vocab.add` SentencePiece pieces trained on `vocab.corpus`, once, into WORKDIR/vocab/
(train/vocab_step.py), and prints tokens per character / per word on a held-out slice before and after;
a rerun or resume reuses that directory. The stages then train with it and `model.resize_vocab`: the
default starts from scratch, so the model is built at the extended size directly; from a pretrained model
(`--config.model.init=hf:DIR`) CP's model grows its embedding and head to the extended vocabulary (new
rows: the mean of their base pieces' rows, models/resize_vocab.py) and trains them; IFT starts from CP's
extended model, which it leaves as it is. A LoRA stage trains the new rows through adapters on the
`embed` and `lm_head` roles (`--config.peft.targets=attn,mlp,embed,lm_head`). The same extension by hand:
`python -m medjax.data.vocab --base=... --corpus=... --add=N --out=DIR`.
"""
from medjax.assets import default_paths
from medjax.train.config import parent_config


def get_config():
    c = parent_config(__file__, "cp_ift.py")
    c.workdir = "runs/vocab_cp_ift"
    c.vocab.corpus = default_paths()["cp_train"]  # the embedded default's CP corpus
    c.vocab.add = 256
    return c
