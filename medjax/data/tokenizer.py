"""Tokenizers: a transformers tokenizer directory or a bare SentencePiece `.model` file.

Both are wrapped in one small interface so the rest of medjax never asks which kind it has:
`encode(text) -> ids` (no special tokens added), `decode(ids)`, `bos_id`, `eos_id`, `pad_id`,
`vocab_size`, `chat_template`, `save(dir)` and `fingerprint()`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from typing import Sequence

# Files a transformers tokenizer directory may hold; copied verbatim on save.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "ice_text.model",
    "vocab_extension.json",  # how data/vocab.py extended a base tokenizer; travels with it
)


class Tokenizer:
    """Common surface over a SentencePiece processor or a transformers tokenizer."""

    def __init__(self, backend, source_files: Sequence[str], kind: str):
        self._backend = backend
        self._source_files = list(source_files)
        self.kind = kind  # "sentencepiece" | "hf"

    # -- ids -------------------------------------------------------------------------------
    @property
    def bos_id(self) -> int | None:
        if self.kind == "sentencepiece":
            return _none_if_negative(self._backend.bos_id())
        return self._backend.bos_token_id

    @property
    def eos_id(self) -> int | None:
        if self.kind == "sentencepiece":
            return _none_if_negative(self._backend.eos_id())
        return self._backend.eos_token_id

    @property
    def pad_id(self) -> int | None:
        if self.kind == "sentencepiece":
            return _none_if_negative(self._backend.pad_id())
        return self._backend.pad_token_id

    @property
    def vocab_size(self) -> int:
        if self.kind == "sentencepiece":
            return self._backend.vocab_size()
        return len(self._backend)

    @property
    def chat_template(self) -> str | None:
        if self.kind == "sentencepiece":
            return None
        return getattr(self._backend, "chat_template", None)

    @property
    def hf(self):
        """The underlying transformers tokenizer (None for a bare SentencePiece model)."""
        return self._backend if self.kind == "hf" else None

    @property
    def files(self) -> list[str]:
        """The files it was loaded from (what `save` copies and `fingerprint` hashes)."""
        return list(self._source_files)

    def token_to_id(self, token: str) -> int | None:
        if self.kind == "sentencepiece":
            i = self._backend.piece_to_id(token)
            return None if i == self._backend.unk_id() and token != self._backend.id_to_piece(i) else i
        i = self._backend.convert_tokens_to_ids(token)
        return None if i is None or i == self._backend.unk_token_id and token != self._backend.unk_token else i

    # -- text ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with no BOS/EOS added."""
        if self.kind == "sentencepiece":
            return list(self._backend.encode(text))
        return list(self._backend.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if self.kind == "sentencepiece":
            if skip_special_tokens:
                special = {self.bos_id, self.eos_id, self.pad_id}
                ids = [i for i in ids if i not in special]
            return self._backend.decode(ids)
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    # -- files -----------------------------------------------------------------------------
    def save(self, directory: str) -> None:
        """Copies the tokenizer's own files into `directory` (an HF directory or a run)."""
        os.makedirs(directory, exist_ok=True)
        for path in self._source_files:
            shutil.copy2(path, os.path.join(directory, os.path.basename(path)))

    def fingerprint(self) -> str:
        """sha256 over the tokenizer files: lineage records it to catch tokenizer swaps."""
        h = hashlib.sha256()
        for path in sorted(self._source_files, key=os.path.basename):
            h.update(os.path.basename(path).encode())
            with open(path, "rb") as f:
                h.update(f.read())
        return h.hexdigest()[:16]


def _none_if_negative(i: int) -> int | None:
    return None if i < 0 else i


def has_tokenizer(directory: str) -> bool:
    return any(os.path.exists(os.path.join(directory, f)) for f in TOKENIZER_FILES)


def load_tokenizer(path: str) -> Tokenizer:
    """Loads a tokenizer from a `.model` SentencePiece file or a transformers directory."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"tokenizer not found: {path}")
    from medjax.data.glm_tokenizer import glm_tokenizer  # GLM remote-code tokenizers

    glm = glm_tokenizer(path)
    if glm is not None:
        return glm
    from medjax.data.baichuan_tokenizer import baichuan_tokenizer  # BaichuanTokenizer, remote code in HF

    baichuan = baichuan_tokenizer(path)
    if baichuan is not None:
        return baichuan
    if os.path.isfile(path):
        if not path.endswith(".model"):
            raise ValueError(f"{path}: expected a SentencePiece .model file or a tokenizer directory")
        import sentencepiece as spm

        return Tokenizer(spm.SentencePieceProcessor(model_file=path), [path], "sentencepiece")
    files = [os.path.join(path, f) for f in TOKENIZER_FILES if os.path.exists(os.path.join(path, f))]
    if not files:
        raise FileNotFoundError(
            f"{path}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")
    names = {os.path.basename(f) for f in files}
    if names <= {"tokenizer.model", "vocab_extension.json"}:
        import sentencepiece as spm

        model_file = os.path.join(path, "tokenizer.model")
        return Tokenizer(spm.SentencePieceProcessor(model_file=model_file), files, "sentencepiece")
    from transformers import AutoTokenizer

    backend = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return Tokenizer(backend, files, "hf")
