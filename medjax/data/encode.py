"""Records -> token ids with per-token loss flags, for each kind of training.

A `Document` is one packable sequence: `ids` and `trained[i]` = "token i is a loss target"
(predicted from token i-1). kind='lm' trains on every token of BOS + text + EOS; kind='sft' renders
the dialogue with the chat template and trains on responses (each closed by the end-of-turn
token), with `train_on_prompt` / `mask_history`. kind='pref' gives a `Pair`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from medjax.data import templates
from medjax.data.config import KINDS
from medjax.data.records import DataError, Record


@dataclasses.dataclass(frozen=True)
class Document:
    ids: np.ndarray      # int32 [n]
    trained: np.ndarray  # bool [n]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Pair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


@dataclasses.dataclass(frozen=True)
class EncodeOptions:
    template: templates.ChatTemplate
    train_on_prompt: bool = False
    mask_history: bool = False
    system: str | None = None


def encode_record(record: Record, kind: str, tokenizer, options: EncodeOptions) -> Document | Pair:
    if kind == "lm":
        if record.shape == "text":
            return _document([(_bos(tokenizer) + tokenizer.encode(record.text) + _eos(tokenizer), True)])
        if record.shape == "chat":  # a dialogue as plain text: every token trains
            return _dialogue(record, tokenizer, dataclasses.replace(options, train_on_prompt=True,
                                                                    mask_history=False))
    elif kind == "sft":
        if record.shape == "chat":
            return _dialogue(record, tokenizer, options)
    elif kind == "pref":
        if record.shape == "pref":
            return _pair(record, tokenizer, options)
    else:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {KINDS}")
    raise DataError(f"{record.origin}: a {record.shape!r} record cannot train kind {kind!r} "
                    f"(lm takes text or dialogues, sft dialogues, pref preference pairs)")


def _bos(tokenizer) -> list[int]:
    return [tokenizer.bos_id] if tokenizer.bos_id is not None else []


def _eos(tokenizer) -> list[int]:
    return [tokenizer.eos_id] if tokenizer.eos_id is not None else []


def _document(spans: list[tuple[list[int], bool]]) -> Document:
    ids = [i for span, _ in spans for i in span]
    trained = [flag for span, flag in spans for _ in span]
    return Document(np.asarray(ids, np.int32), np.asarray(trained, bool))


def _dialogue(record: Record, tokenizer, options: EncodeOptions) -> Document:
    turns = templates.encode_turns(record.messages, options.template, tokenizer, options.system)
    spans = []
    for i, (prompt, response) in enumerate(turns):
        trains = not options.mask_history or i == len(turns) - 1
        spans += [(prompt, trains and options.train_on_prompt), (response, trains)]
    return _document(spans)


def _pair(record: Record, tokenizer, options: EncodeOptions) -> Pair:
    responses = []
    for answer in (record.chosen, record.rejected):
        messages = list(record.messages) + [{"role": "assistant", "content": answer}]
        turns = templates.encode_turns(messages, options.template, tokenizer, options.system)
        prompt = [i for p, r in turns[:-1] for i in p + r] + turns[-1][0]
        responses.append(turns[-1][1])
    return Pair(prompt, responses[0], responses[1])
