"""Paths into ../shared/data, the public files the README promises beside the repository.

A missing file fails the test that needs it, naming the path, instead of skipping it: a skip would
silently turn a parity check off on a machine set up differently.
"""
import os

import pytest

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))


def shared_data(path: str) -> str:
    """`path` (absolute, or relative to ../shared/data), failing the test when it does not exist."""
    path = os.path.normpath(os.path.join(SHARED_DATA, path))
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: the tests read the public files in ../shared/data beside the repository "
                    "(README.md, Tests)", pytrace=False)
    return path
