"""Instruction fine-tuning with QLoRA: the base stored as NF4 (double-quantised scales), dequantised
in each layer's forward pass; LoRA adapters on top. --config.peft.quant=int8 stores int8 instead.

python -m medjax.main --config=configs/ift_qlora.py --config.model.init=hf:/models/llama-2-13b \
    --config.model.dtype=bfloat16
"""
from medjax.train.config import parent_config


def get_config():
    c = parent_config(__file__, "ift_lora.py")
    c.workdir = "runs/ift_qlora"
    c.peft.method = "qlora"
    c.peft.quant = "nf4"
    return c
