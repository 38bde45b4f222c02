"""Shapes for models trained from scratch (`model.init=scratch`, `model.preset=NAME`)."""
from __future__ import annotations

PRESETS = {
    # the embedded default: trains CP + IFT on a 2-core CPU in minutes
    "tiny": dict(hidden_size=128, intermediate_size=352, num_layers=4, num_heads=4, num_kv_heads=2,
                 max_position_embeddings=1024, tie_embeddings=True),
    # for tests: compiles in seconds
    "test": dict(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 max_position_embeddings=512, tie_embeddings=True),
    # the PERFORMANCE.md workload: 57.7M parameters with the 32k LLaMA vocabulary
    "bench50m": dict(hidden_size=512, intermediate_size=1344, num_layers=8, num_heads=8, num_kv_heads=8,
                     max_position_embeddings=2048),
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32, num_kv_heads=32,
                      max_position_embeddings=4096, norm_eps=1e-5),
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"config.model.preset={name!r}: known presets are {sorted(PRESETS)}")
    return dict(PRESETS[name])
