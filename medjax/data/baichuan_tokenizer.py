"""Baichuan / Baichuan2 tokenizers without remote code.

The published directories name `"tokenizer_class": "BaichuanTokenizer"` with an auto_map to
tokenization_baichuan.py, which transformers will only run with trust_remote_code. That class is a
LLaMA-style SentencePiece tokenizer: `tokenizer.model`'s pieces are the ids, the special tokens are
pieces of that model looked up by the strings in the directory's config (bos "<s>", eos "</s>", pad
"<unk>" or none), and add_bos_token / add_eos_token say what build_inputs_with_special_tokens adds.
So it loads here as a SentencePiece tokenizer whose bos/eos/pad come from the config, not from the
model's own ids (Baichuan2 pads with <unk>, where the SentencePiece model has no pad).
"""
from __future__ import annotations

import os
import re
from typing import Sequence

from medjax.checkpoint.hf_io import read_json_object
from medjax.data.tokenizer import TOKENIZER_FILES, Tokenizer

BAICHUAN_CLASS = "BaichuanTokenizer"
REMOTE_CODE_FILE = "tokenization_baichuan.py"
# tokenization_baichuan.py's defaults for what its config does not say
_DEFAULT_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None, "unk_token": "<unk>"}
_DEFAULT_FLAGS = {"add_bos_token": True, "add_eos_token": False}


def is_baichuan_config(config: dict) -> bool:
    """True for a tokenizer_config.json naming BaichuanTokenizer, by class or by its auto_map."""
    if config.get("tokenizer_class") == BAICHUAN_CLASS:
        return True
    auto_map = config.get("auto_map")
    entry = auto_map.get("AutoTokenizer") if isinstance(auto_map, dict) else None
    names = entry if isinstance(entry, list) else [entry]
    return any(isinstance(n, str) and n.startswith("tokenization_baichuan.") for n in names)


def _token_string(value, where: str) -> str | None:
    """A special token as the config spells it: a string, an AddedToken dict, or null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise ValueError(f"{where}: expected a token string, an AddedToken object or null, got {value!r}")


class BaichuanTokenizer(Tokenizer):
    def __init__(self, directory: str):
        import sentencepiece as spm

        model_file = os.path.join(directory, "tokenizer.model")
        config_path = os.path.join(directory, "tokenizer_config.json")
        if not os.path.exists(model_file):
            raise FileNotFoundError(f"{config_path}: names {BAICHUAN_CLASS}, but {model_file} is missing")
        config = read_json_object(config_path)
        map_path = os.path.join(directory, "special_tokens_map.json")
        special_map = read_json_object(map_path) if os.path.exists(map_path) else {}
        sp = spm.SentencePieceProcessor(model_file=model_file)
        files = [os.path.join(directory, f) for f in TOKENIZER_FILES if os.path.exists(os.path.join(directory, f))]
        remote = os.path.join(directory, REMOTE_CODE_FILE)
        if os.path.exists(remote):  # keeps a saved copy loadable by transformers with remote code
            files.append(remote)
        super().__init__(sp, files, "sentencepiece")

        self.special_ids: dict[str, int] = {}  # key (bos_token, ...) -> id
        self.special_tokens: dict[str, str] = {}
        for key, default in _DEFAULT_TOKENS.items():
            # special_tokens_map.json wins over tokenizer_config.json, as in transformers
            if key in special_map:
                where, value = f"{map_path}: {key}", special_map[key]
            elif key in config:
                where, value = f"{config_path}: {key}", config[key]
            else:
                where, value = f"{config_path}: {key} (default)", default
            token = _token_string(value, where)
            if token is None:
                continue
            i = sp.piece_to_id(token)
            if i == sp.unk_id() and token != sp.id_to_piece(i):
                raise ValueError(f"{where}: {token!r} is not a piece of {model_file}")
            self.special_ids[key] = i
            self.special_tokens[key] = token
        for key, default in _DEFAULT_FLAGS.items():
            value = config.get(key, default)
            if not isinstance(value, bool):
                raise ValueError(f"{config_path}: {key} must be true or false, got {value!r}")
            setattr(self, key, value)
        self._chat_template = _chat_template(directory, config, config_path)
        # special-token strings in the text become their ids, as in the transformers tokenizer
        tokens = sorted(set(self.special_tokens.values()), key=len, reverse=True)
        self._special_pattern = re.compile("(" + "|".join(re.escape(t) for t in tokens) + ")") if tokens else None
        self._id_of_token = {t: self.special_ids[k] for k, t in self.special_tokens.items()}

    @property
    def bos_id(self) -> int | None:
        return self.special_ids.get("bos_token")

    @property
    def eos_id(self) -> int | None:
        return self.special_ids.get("eos_token")

    @property
    def pad_id(self) -> int | None:
        return self.special_ids.get("pad_token")

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    def encode(self, text: str) -> list[int]:
        if self._special_pattern is None:
            return list(self._backend.encode(text))
        ids: list[int] = []
        for part in self._special_pattern.split(text):
            if part in self._id_of_token:
                ids.append(self._id_of_token[part])
            elif part:
                ids.extend(self._backend.encode(part))
        return ids

    def build_inputs(self, ids: Sequence[int]) -> list[int]:
        """What BaichuanTokenizer.build_inputs_with_special_tokens adds, by add_bos_token / add_eos_token."""
        bos = [self.bos_id] if self.add_bos_token and self.bos_id is not None else []
        eos = [self.eos_id] if self.add_eos_token and self.eos_id is not None else []
        return bos + list(ids) + eos


def _chat_template(directory: str, config: dict, config_path: str) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # transformers' named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is not None and not isinstance(template, str):
        raise ValueError(f"{config_path}: chat_template must be a string or a list of named templates")
    jinja = os.path.join(directory, "chat_template.jinja")
    if template is None and os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    return template


def baichuan_tokenizer(path: str) -> Tokenizer | None:
    """The Baichuan tokenizer of a directory, or None when `path` holds another kind."""
    config_path = os.path.join(path, "tokenizer_config.json")
    if not os.path.isdir(path) or not os.path.exists(config_path):
        return None
    if not is_baichuan_config(read_json_object(config_path)):
        return None
    return BaichuanTokenizer(path)
