"""Instruction fine-tuning with LoRA adapters on every decoder-layer Linear (the base stays frozen).

python -m medjax.main --config=configs/ift_lora.py --config.model.init=hf:/models/llama-2-7b
The embedded default trains a scratch `tiny` model on the bundled medical dialogues in about a minute.
"""
from medjax.train.config import parent_config


def get_config():
    c = parent_config(__file__, "ift.py")
    c.workdir = "runs/ift_lora"
    c.peft.method = "lora"
    c.peft.rank = 8
    c.peft.alpha = 16.0
    c.peft.dropout = 0.05
    c.peft.targets = "attn,mlp"
    c.train.steps = 60
    c.train.batch_size = 8
    c.train.lr = 3e-3  # adapters start at zero and take larger steps than full fine-tuning
    c.train.log_every = 10
    c.train.eval_every = 30
    c.checkpoint.every = 30
    return c
