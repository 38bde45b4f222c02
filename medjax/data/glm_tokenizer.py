"""GLM tokenizers that transformers cannot load without remote code.

  ChatGLM-6B  `ice_text.model`: the SentencePiece pieces are the model's ids; newlines, tabs and runs
              of 2-80 spaces are spelled as the pieces <n>, <|tab|>, <|blank_N|>; the special
              tokens [MASK] [gMASK] [sMASK] <sop> <eop> are pieces too; the model's input ends
              with [gMASK] <sop>.
  ChatGLM2/3  `tokenizer.model` plus special tokens numbered after the SentencePiece vocabulary
              ([MASK] [gMASK] [sMASK] sop eop, and for ChatGLM3 the role tokens); inputs start
              with [gMASK] sop.
  GLM-10B     `GLMGPT2Tokenizer`: GPT-2 byte-level BPE (vocab.json + merges.txt, <|endoftext|> last)
              plus THUDM/GLM's block symbols and task masks numbered after it (added_tokens.json);
              inputs are [CLS] text <|endoftext|>, then <|startofpiece|> to generate a blank.
GLM-4's tokenizer is a plain transformers tokenizer (tokenizer.json) and needs nothing here.
All keep medjax's Tokenizer surface (`encode` adds no special tokens); `build_inputs(ids)` adds what
the original tokenizer's build_inputs_with_special_tokens adds. Special-token strings in the text
(e.g. "[MASK]" or "<|user|>") become their ids, as in the transformers tokenizers.
"""
from __future__ import annotations

import json
import os
import re
from typing import Sequence

from medjax.checkpoint.hf_io import read_json_object
from medjax.data.tokenizer import Tokenizer

CHATGLM6B_FILE = "ice_text.model"
CHATGLM6B_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>")
CHATGLM2_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
CHATGLM3_ROLES = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")
_MAX_BLANK = 80
GLM10B_CLASS = "GLMGPT2Tokenizer"
# THUDM/GLM's GPT2BPETokenizer with block symbols and task masks: these ids follow the 50,257 BPE tokens
GLM10B_SPECIALS = ("<|startofpiece|>", "<|endofpiece|>", "[CLS]", "[MASK]", "[SEP]", "[UNK]", "[gMASK]", "[sMASK]")
GLM10B_BPE_SIZE = 50257
# lstrip=True in THUDM/GLM: a mask token swallows the whitespace before it
_GLM10B_LEFT_STRIPPING = ("[MASK]", "[gMASK]", "[sMASK]")


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
        # bare "sop"/"eop" are ordinary text ("isopropyl"): only bracketed specials are spotted in text
        self._text_specials = tuple(t for t in self.specials if t not in ("sop", "eop"))
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
        for part in _split_specials(text, self._text_specials):
            ids += [self.special_ids[part]] if part in self._text_specials else self._backend.encode(part)
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


def added_token_ids(directory: str) -> tuple[dict[str, int], list[str]]:
    """(token string -> id, the files looked at) for the added tokens a tokenizer directory declares
    in added_tokens.json, tokenizer_config.json's added_tokens_decoder or tokenizer.json's
    added_tokens; the first file that names a token wins."""
    looked_at = [os.path.join(directory, f) for f in ("added_tokens.json", "tokenizer_config.json", "tokenizer.json")]
    found: dict[str, int] = {}
    for path in looked_at:
        if not os.path.exists(path):
            continue
        data = read_json_object(path)
        name = os.path.basename(path)
        if name == "added_tokens.json":
            pairs = data.items()
        elif name == "tokenizer_config.json":
            pairs = ((t["content"], i) for i, t in (data.get("added_tokens_decoder") or {}).items())
        else:
            pairs = ((t["content"], t["id"]) for t in data.get("added_tokens") or [])
        try:
            for token, i in pairs:
                found.setdefault(token, int(i))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed added-token entry ({e!r}); expected string -> integer id") from e
    return found, looked_at


class GLM10BTokenizer(Tokenizer):
    """GLM-10B's GLMGPT2Tokenizer without its remote code: transformers' GPT-2 BPE with the GLM
    special tokens added at their published ids. bos is [CLS] and eos (and pad) <|endoftext|>, so
    a document reads as build_inputs spells it; generation stops at <|endofpiece|> (config.json)."""

    def __init__(self, directory: str):
        from tokenizers import AddedToken
        from transformers import GPT2Tokenizer

        files = {f: os.path.join(directory, f) for f in ("vocab.json", "merges.txt")}
        for path in files.values():
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path}: missing ({GLM10B_CLASS} needs vocab.json and merges.txt)")
        backend = GPT2Tokenizer(vocab=files["vocab.json"], merges=files["merges.txt"], add_prefix_space=False)
        bpe_size = len(backend)
        ids = self._special_ids(directory, bpe_size)
        backend.add_tokens([AddedToken(t, special=True, normalized=False, lstrip=t in _GLM10B_LEFT_STRIPPING)
                            for t in sorted(ids, key=ids.get)], special_tokens=True)
        sources = list(files.values()) + [os.path.join(directory, f) for f in (
            "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json")
            if os.path.exists(os.path.join(directory, f))]
        super().__init__(backend, sources, "hf")
        self.special_ids = ids
        if backend.convert_tokens_to_ids("<|endoftext|>") != bpe_size - 1:
            raise ValueError(f"{files['vocab.json']}: <|endoftext|> must be the last BPE token (id {bpe_size - 1})")

    @staticmethod
    def _special_ids(directory: str, bpe_size: int) -> dict[str, int]:
        """The GLM special tokens' ids: added_tokens.json's, else the published ones; either way
        numbered right after the BPE vocabulary, which is where transformers adds them."""
        path = os.path.join(directory, "added_tokens.json")
        if os.path.exists(path):
            # entries inside the BPE vocabulary (e.g. <|endoftext|>) are already tokens of vocab.json
            ids = {t: int(i) for t, i in read_json_object(path).items() if int(i) >= bpe_size}
            missing = [t for t in GLM10B_SPECIALS if t not in ids]
            if missing:
                raise ValueError(f"{path}: lacks the GLM special tokens {missing}")
        else:
            path = f"the published {GLM10B_CLASS} ids (no added_tokens.json in {directory})"
            ids = {t: GLM10B_BPE_SIZE + k for k, t in enumerate(GLM10B_SPECIALS)}
        expected = list(range(bpe_size, bpe_size + len(ids)))
        if sorted(ids.values()) != expected:
            raise ValueError(f"{path}: added token ids {sorted(ids.values())} do not follow the {bpe_size} tokens of "
                             f"vocab.json (expected {expected[0]}..{expected[-1]})")
        return ids

    @property
    def bos_id(self) -> int:
        return self.special_ids["[CLS]"]

    @property
    def eos_id(self) -> int:
        return self._backend.convert_tokens_to_ids("<|endoftext|>")

    @property
    def pad_id(self) -> int:  # GLM-10B pads with <|endoftext|>
        return self.eos_id

    def build_inputs(self, ids: Sequence[int]) -> list[int]:
        return [self.bos_id] + list(ids) + [self.eos_id]


def _tokenizer_class(config_path: str) -> str | None:
    return read_json_object(config_path).get("tokenizer_class") if os.path.exists(config_path) else None


def glm_tokenizer(path: str) -> Tokenizer | None:
    """The GLM tokenizer of a file or directory, or None when `path` holds another kind."""
    if os.path.isfile(path):
        return ChatGLM6BTokenizer(path) if os.path.basename(path) == CHATGLM6B_FILE else None
    v1 = os.path.join(path, CHATGLM6B_FILE)
    config_path = os.path.join(path, "tokenizer_config.json")
    config_files = [config_path] if os.path.exists(config_path) else []
    if os.path.exists(v1):
        return ChatGLM6BTokenizer(v1, [v1] + config_files)
    tokenizer_class = _tokenizer_class(config_path)
    if tokenizer_class == GLM10B_CLASS:
        return GLM10BTokenizer(path)
    if tokenizer_class in ("GLMChineseTokenizer", "GLMBertTokenizer"):
        raise ValueError(f"{config_path}: tokenizer_class {tokenizer_class!r} is not supported (only GLM-10B's "
                         f"{GLM10B_CLASS}, ChatGLM-6B's ice_text.model and ChatGLMTokenizer)")
    model = os.path.join(path, "tokenizer.model")
    if tokenizer_class != "ChatGLMTokenizer" or not os.path.exists(model):
        return None
    version = 3 if "<|user|>" in json.dumps(read_json_object(config_path)) else 2  # ChatGLM3 lists its role tokens
    tok = ChatGLM2Tokenizer(model, version, [model, config_path])
    declared, _ = added_token_ids(path)
    for token, i in tok.special_ids.items():
        if declared.get(token, i) != i:
            raise ValueError(f"{path}: the tokenizer files (added_tokens.json, tokenizer_config.json, tokenizer.json) "
                             f"give {token!r} id {declared[token]}, but numbered after the SentencePiece vocabulary "
                             f"of tokenizer.model it is {i}")
    return tok
