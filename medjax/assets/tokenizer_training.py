"""Trains the default SentencePiece tokenizer, reproducibly, from the generated text.

LLaMA-style settings: BPE, byte fallback (no text is ever <unk>), digits split one by one,
identity normalisation (so decode(encode(text)) == text). Special ids: unk 0, bos 1, eos 2,
pad 3 ("<pad>"). Training reads sentences from memory and writes the model to memory, so the
model file records no paths and the same text always gives the same bytes.
"""
from __future__ import annotations

import io

import sentencepiece as spm


def train_sentencepiece(lines: list[str], vocab_size: int) -> bytes:
    """The serialized model (the bytes of a `tokenizer.model` file)."""
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ValueError("no text to train the tokenizer on")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>",
        # One thread, every sentence, no sampling: the same input always gives the same model.
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=16384,
        minloglevel=2,
    )
    return model.getvalue()
