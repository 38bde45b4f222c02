"""ChatGLM tokenizers that transformers cannot load without remote code.

  ChatGLM-6B  `ice_text.model`: the SentencePiece pieces are the model's ids; newlines, tabs and runs
              of 2-80 spaces are spelled as the pieces <n>, <|tab|>, <|blank_N|>; the special
              tokens [MASK] [gMASK] [sMASK] <sop> <eop> are pieces too; the model's input ends
              with [gMASK] <sop>.
  ChatGLM2/3  `tokenizer.model` plus special tokens numbered after the SentencePiece vocabulary
              ([MASK] [gMASK] [sMASK] sop eop, and for ChatGLM3 the role tokens); inputs start
              with [gMASK] sop.
GLM-4's tokenizer is a plain transformers tokenizer (tokenizer.json) and needs nothing here.
Both classes keep medjax's Tokenizer surface (`encode` adds no special tokens); `build_inputs(ids)`
adds what the original tokenizer's build_inputs_with_special_tokens adds. Special-token strings in
the text (e.g. "[MASK]" or "<|user|>") become their ids, as in the transformers tokenizers.
"""
from __future__ import annotations

import json
import os
import re
from typing import Sequence

from medjax.data.tokenizer import Tokenizer

CHATGLM6B_FILE = "ice_text.model"
CHATGLM6B_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>")
CHATGLM2_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
CHATGLM3_ROLES = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")
_MAX_BLANK = 80


def _split_specials(text: str, specials: Sequence[str]) -> list[str]:
    """Text pieces with every special-token string as its own piece."""
    pattern = "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
    return [part for part in re.split(pattern, text) if part]


class ChatGLM6BTokenizer(Tokenizer):
    def __init__(self, model_file: str, source_files: Sequence[str] | None = None):
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=model_file)
        super().__init__(sp, source_files or [model_file], "sentencepiece")
        self.special_ids = {}
        for token in CHATGLM6B_SPECIALS + ("<n>", "<|tab|>"):
            i = sp.piece_to_id(token)
            if i == sp.unk_id():
                raise ValueError(f"{model_file}: piece {token!r} is missing (not a ChatGLM-6B ice_text.model)")
            self.special_ids[token] = i

    @property
    def bos_id(self) -> int:  # ChatGLM-6B's bos is <sop>, its eos <eop> (config.json agrees)
        return self.special_ids["<sop>"]

    @property
    def eos_id(self) -> int:
        return self.special_ids["<eop>"]

    @property
    def pad_id(self) -> int:
        return self._backend.piece_to_id("<pad>")

    @staticmethod
    def preprocess(text: str) -> str:
        text = text.replace("\n", "<n>").replace("\t", "<|tab|>")
        for n in range(_MAX_BLANK, 1, -1):
            text = text.replace(" " * n, f"<|blank_{n}|>")
        return text

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _split_specials(text, CHATGLM6B_SPECIALS):
            ids += [self.special_ids[part]] if part in CHATGLM6B_SPECIALS else self._backend.encode(
                self.preprocess(part))
        return ids

    def build_inputs(self, ids: Sequence[int]) -> list[int]:
        return list(ids) + [self.special_ids["[gMASK]"], self.special_ids["<sop>"]]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            drop = {self.special_ids[t] for t in CHATGLM6B_SPECIALS} | {
                self._backend.bos_id(), self._backend.eos_id(), self.pad_id}
            ids = [i for i in ids if i not in drop]
        text = self._backend.decode(ids).replace("<n>", "\n").replace("<|tab|>", "\t")
        return re.sub(r"<\|blank_(\d+)\|>", lambda m: " " * int(m.group(1)), text)


class ChatGLM2Tokenizer(Tokenizer):
    """ChatGLM2-6B (version 2) and ChatGLM3-6B (version 3: adds the role tokens)."""

    def __init__(self, model_file: str, version: int, source_files: Sequence[str] | None = None):
        import sentencepiece as spm

        if version not in (2, 3):
            raise ValueError(f"unknown ChatGLM tokenizer version {version!r}; expected 2 or 3")
        sp = spm.SentencePieceProcessor(model_file=model_file)
        super().__init__(sp, source_files or [model_file], "sentencepiece")
        self.specials = CHATGLM2_SPECIALS + (CHATGLM3_ROLES if version == 3 else ())
        self.special_ids = {t: sp.vocab_size() + k for k, t in enumerate(self.specials)}
        self.version = version

    @property
    def vocab_size(self) -> int:
        return self._backend.vocab_size() + len(self.specials)

    @property
    def pad_id(self) -> int:  # ChatGLM2 pads with <unk> (id 0)
        return self._backend.unk_id()

    def token_to_id(self, token: str) -> int | None:
        return self.special_ids[token] if token in self.special_ids else super().token_to_id(token)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _split_specials(text, self.specials):
            ids += [self.special_ids[part]] if part in self.special_ids else self._backend.encode(part)
        return ids

    def build_inputs(self, ids: Sequence[int]) -> list[int]:
        return [self.special_ids["[gMASK]"], self.special_ids["sop"]] + list(ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        n = self._backend.vocab_size()
        by_id = {i: t for t, i in self.special_ids.items()}
        text, run = [], []
        for i in (int(i) for i in ids):
            if i < n and not (skip_special_tokens and i in (self._backend.bos_id(), self._backend.eos_id())):
                run.append(i)
                continue
            text.append(self._backend.decode(run))
            run = []
            if i >= n and not skip_special_tokens:
                text.append(by_id.get(i, ""))
        text.append(self._backend.decode(run))
        return "".join(text)


def chatglm_tokenizer(path: str) -> Tokenizer | None:
    """The ChatGLM tokenizer of a file or directory, or None when `path` holds another kind."""
    if os.path.isfile(path):
        return ChatGLM6BTokenizer(path) if os.path.basename(path) == CHATGLM6B_FILE else None
    v1 = os.path.join(path, CHATGLM6B_FILE)
    config_path = os.path.join(path, "tokenizer_config.json")
    config_files = [config_path] if os.path.exists(config_path) else []
    if os.path.exists(v1):
        return ChatGLM6BTokenizer(v1, [v1] + config_files)
    model = os.path.join(path, "tokenizer.model")
    if not (config_files and os.path.exists(model)):
        return None
    with open(config_path) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{config_path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    if config.get("tokenizer_class") != "ChatGLMTokenizer":
        return None
    version = 3 if "<|user|>" in json.dumps(config) else 2  # ChatGLM3 lists its role tokens
    return ChatGLM2Tokenizer(model, version, [model, config_path])
