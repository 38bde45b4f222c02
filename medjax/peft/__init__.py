"""Parameter-efficient fine-tuning as transformations of the model graph.

  config.py         the `peft` config section (method none|lora|qlora|prompt, rank, alpha, ...) and peft_config.json
  targets.py        which layers get adapters: roles (q, k, v, o, gate, up, down, lm_head, embed), groups, globs
  lora.py           LoRAParam, LoRAModule, LoRALinear, merge/unmerge, merged_backbone, adapters_disabled, dropout_rng
  dropout_mask.py   LoRA dropout's keep-mask: a counter hash of iotas (the TPU compiler is slow on threefry)
  lora_embedding.py LoRAEmbed: LoRA on the token embedding table (peft's lora.Embedding; tied heads keep the base)
  nf4.py            the published NF4 code book and 4-bit packing
  quantized.py      QuantizedLinear: NF4 (double-quantised scales) or int8 frozen base weights
  prompt_tuning.py  add_soft_prompt: trainable soft-prompt vectors prepended to every row
  setup.py          apply_peft / trainable_filter / backbone_of: the entry points for the trainer and loaders
  adapter_io.py     LoRA <-> PEFT adapter directories (adapter_config.json + adapter_model.safetensors)
  adapter_fused.py  separate adapters <-> one block-diagonal adapter on a fused HF Linear (GLM v1 query_key_value)
  prompt_io.py      soft prompt <-> PEFT prompt-tuning directories (prompt_embeddings)
  convert.py        `python -m medjax.convert` for peft: sources/destinations and --merge
"""
