"""Instruction fine-tuning with QLoRA: the base stored as NF4 (double-quantised scales), dequantised
in each layer's forward pass; LoRA adapters on top. --config.peft.quant=int8 stores int8 instead.

python -m medjax.main --config=configs/ift_qlora.py --config.model.init=hf:/models/llama-2-13b \
    --config.model.dtype=bfloat16
"""
from configs.ift_lora import get_config as lora_config


def get_config():
    c = lora_config()
    c.workdir = "runs/ift_qlora"
    c.peft.method = "qlora"
    c.peft.quant = "nf4"
    return c
