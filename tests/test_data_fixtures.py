"""Shared fixtures for the data tests (no tests here): the real LLaMA-2 tokenizer and data paths.

Kept in a tests/test_data_* file because the data area owns only those; import with
`from test_data_fixtures import llama2_tokenizer`.
"""
import functools
import os

import pytest
from shared_data import shared_data

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
MEDICALGPT = os.path.join(SHARED, "corpora", "medicalgpt")
LLAMA2_TOKENIZER = os.path.join(SHARED, "tokenizers", "llama2", "tokenizer.model")


@functools.lru_cache(maxsize=None)
def load_llama2_tokenizer():
    from medjax.data.tokenizer import load_tokenizer

    return load_tokenizer(shared_data(LLAMA2_TOKENIZER))


@pytest.fixture
def llama2_tokenizer():
    return load_llama2_tokenizer()
