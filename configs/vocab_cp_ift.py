"""Vocabulary extension -> continued pretraining -> instruction tuning (configs/cp_ift.py with an
extended tokenizer and `model.resize_vocab`).

Two commands: extending the vocabulary is a data step run once (CPU, seconds to minutes), whose
output directory is kept and reused like a dataset, not a training stage (no mesh, checkpoints or
hosts to coordinate, nothing to resume):

    python -m medjax.data.vocab --base=medjax/assets/default/tokenizer/tokenizer.model \\
        --corpus=medjax/assets/default/corpus --add=256 --out=runs/vocab_cp_ift/tokenizer
    python -m medjax.main --config=configs/vocab_cp_ift.py

The first prints tokens per character / per word on a held-out slice before and after. The default
starts from scratch, so the model is built at the extended size directly; from a pretrained model
(`--config.model.init=hf:DIR`, DIR's tokenizer being the `--base`) CP's model grows its embedding and
head to the extended vocabulary (new rows: the mean of their base pieces' rows, models/resize_vocab.py)
and trains them; IFT starts from CP's extended model, which it leaves as it is. A LoRA stage trains the
new rows through adapters on the `embed` and `lm_head` roles (`--config.peft.targets=attn,mlp,embed,lm_head`).
"""
from medjax.train.config import parent_config

TOKENIZER = "runs/vocab_cp_ift/tokenizer"  # --out of the first command


def get_config():
    c = parent_config(__file__, "cp_ift.py")
    c.workdir = "runs/vocab_cp_ift"
    c.model.tokenizer = TOKENIZER
    c.model.resize_vocab = True
    return c
