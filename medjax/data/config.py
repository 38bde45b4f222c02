"""Defaults for every data key of a stage: `cfg.data = data_config(train=...)`.

Each key is documented where it is set; `medjax.data.pipeline` is the only reader of these keys.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

# What a stage's batches hold (a stage's `kind`): lm = packed documents, loss on every token; sft =
# chat records, loss on responses; pref = one preference pair per row (medjax/data/encode.py).
KINDS = ("lm", "sft", "pref")
PREFETCH = 2  # data.prefetch default


def data_config(train=None, eval=None, **overrides) -> ml_collections.ConfigDict:  # noqa: A002
    """All data keys with their defaults; keyword arguments override any of them."""
    cfg = ml_collections.ConfigDict()
    # What to train on: a file, glob, directory, `hf:NAME` / HF dataset directory, or a list of
    # named sources (a mixture), each a dict: {name, path, weight | priority, epochs, replay, format,
    # text_unit}. A string is one source named after its file. `sources` below is the same list
    # under a clearer name for mixtures; when set it wins over `train`.
    # (Placeholders typed `object` so `--config.data.train=my.jsonl` works and lists are allowed.)
    cfg.train = config_dict.placeholder(object)
    cfg.sources = config_dict.placeholder(object)
    # Held-out data in the same forms; None splits `eval_fraction` of each train source off instead.
    # Or several named held-out sets, each logged as eval_loss/<name> beside the overall eval_loss
    # (e.g. medical and general text, to see forgetting): a dict {name: source} or the string
    # "name=path,name=path" (medjax/data/eval_sources.py; `train.eval_batches` caps each set).
    cfg.eval = config_dict.placeholder(object)
    # Record format: 'auto' (per record, from its keys), 'text', 'alpaca', 'sharegpt', 'messages',
    # 'pref'. Sources may override it.
    cfg.format = "auto"
    # How .txt files become documents: 'paragraph' (blank-line separated), 'line', or 'file'.
    cfg.text_unit = "paragraph"
    # Chat template name (llama2, llama3, mistral, chatml, qwen2, chatglm, chatglm2, chatglm3, glm4,
    # baichuan2, alpaca, vicuna, 'tokenizer' for the tokenizer's own jinja chat_template); None picks
    # the tokenizer's template when it has one, else the model family's default.
    cfg.template = config_dict.placeholder(str)
    # System prompt for chat records that carry none (None: the template's default, if any).
    cfg.system = config_dict.placeholder(str)
    # SFT: also put loss on the prompt tokens (the user turns and the template text).
    cfg.train_on_prompt = False
    # SFT: put loss only on the last assistant turn of a multi-turn dialogue.
    cfg.mask_history = False
    # Records longer than seq_len: 'auto' (lm: 'split', sft: 'right'), 'right' (drop the end),
    # 'left' (drop the start), 'split' (cut into seq_len pieces, each its own document),
    # 'drop' (skip the record, counted in stats). Preference pairs always keep the END of the
    # prompt and the START of each response.
    cfg.truncation = "auto"
    # Malformed lines / records of unknown shape: False raises naming file and line; True skips
    # them and counts them in `stats()`.
    cfg.skip_bad_records = False
    # Preference pairs whose chosen and rejected responses are identical teach nothing: skipped.
    cfg.skip_identical_pairs = True
    # When `eval` is None: the fraction of each source (at most `eval_max_records` records per
    # source) held out for evaluation and removed from training; chosen with `split_seed`.
    cfg.eval_fraction = 0.02
    cfg.eval_max_records = 256
    cfg.split_seed = 0
    # Packing: documents waiting to be placed; rows are filled first-fit from this buffer, so
    # larger buffers waste less padding. Part of the resumable iterator state.
    cfg.pack_buffer = 32
    # Shuffle the records of each source (per epoch, from the run seed).
    cfg.shuffle = True
    # Training batches read, tokenized, packed and put on the devices by a background thread while the
    # step before runs, at most this many ahead (medjax/data/prefetch.py); 0 = on the training thread.
    cfg.prefetch = PREFETCH
    # Per-host data (medjax/data/host_shards.py): each batch's rows come from this many shards of the
    # data, each packing batch_size / shards rows from every shards-th record; a process builds only
    # the shards its devices' rows come from. 0 = one per process (1 on one process). A run resumes
    # with the value it was saved with; runs with equal values train on the same batches.
    cfg.shards = 0
    # HF datasets: split name, and streaming for corpora too large to list (no priority sampling).
    cfg.hf_split = "train"
    # Cap on records read per source (None: all); handy for smoke runs.
    cfg.max_records = config_dict.placeholder(int)
    # GLM v1 (ChatGLM-6B, GLM-10B) continued pretraining with autoregressive blank infilling
    # (medjax/data/glm_blank_infilling.py), applied to every `lm` document: mode 'none' (plain
    # next-token text), 'spans' ([MASK] spans of Poisson(mean_span) tokens covering mask_ratio of the
    # document), 'gmask' (one [gMASK] span over the last gmask_min..100%), 'mixed' ('gmask' for a
    # gmask_fraction of the documents, else 'spans'). Loss only on Part B. Documents are cut to fit
    # seq_len *before* the transform, so a row never holds a <sop> without its blank.
    cfg.blank_infilling = ml_collections.ConfigDict({
        "mode": "none", "mask_ratio": 0.15, "mean_span": 3.0, "gmask_fraction": 0.5, "gmask_min": 0.5})
    cfg.train = train
    cfg.eval = eval
    for key, value in overrides.items():
        if key not in cfg:
            raise KeyError(f"data_config: unknown key {key!r}; known keys: {', '.join(sorted(cfg))}")
        if isinstance(cfg[key], ml_collections.ConfigDict) and isinstance(value, dict):
            for sub, sub_value in value.items():  # a section: override its keys one by one
                if sub not in cfg[key]:
                    raise KeyError(f"data_config: unknown key {key}.{sub!r}; known: {', '.join(sorted(cfg[key]))}")
                cfg[key][sub] = sub_value
        else:
            cfg[key] = value
    return cfg
