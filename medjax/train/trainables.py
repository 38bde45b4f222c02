"""Which variables a stage trains, what extra inputs its objective needs, and what it exports.

Full-parameter training trains every nnx.Param. Parameter-efficient methods (medjax/peft) and
alignment objectives with reference models extend this in one place.
"""
from __future__ import annotations

from flax import nnx


def prepare_trainable(c, stage: str, model, stage_dir: str):
    """(model, trainable filter, objective extras) for a stage."""
    del c, stage, stage_dir
    return model, nnx.Param, {}


def exportable_model(model):
    """The plain backbone to write as an HF directory."""
    return model
