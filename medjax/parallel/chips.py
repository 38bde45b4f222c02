"""TPU chips: peak bf16 FLOP/s, HBM capacity and HBM bandwidth, per chip, as Google publishes them.

Each figure cites the Google Cloud TPU documentation page it comes from. Where the page says "GB"
for HBM capacity we keep the GiB the hardware has (16 GiB on v5e; the TPU compiler's own out-of-memory
messages count in GiB), and bandwidths stay decimal (GB/s = 1e9 B/s) as the pages give them.
"""
from __future__ import annotations

import dataclasses

GiB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    peak_bf16_flops: float  # FLOP/s
    hbm_bytes: int
    hbm_bytes_per_s: float


CHIPS = {
    # https://cloud.google.com/tpu/docs/v4 "System architecture": peak compute per chip (bf16) 275 TFLOPs;
    # HBM2 capacity and bandwidth 32 GiB, 1200 GBps
    "v4": Chip("v4", 275e12, 32 * GiB, 1200e9),
    # https://cloud.google.com/tpu/docs/v5e "System architecture": peak compute per chip (bf16) 197 TFLOPs;
    # HBM2 capacity and bandwidth 16 GB, 819 GBps
    "v5e": Chip("v5e", 197e12, 16 * GiB, 819e9),
    # https://cloud.google.com/tpu/docs/v5p "System architecture": peak compute per chip (BF16) 459 TFLOPs;
    # HBM capacity per chip 95 GiB; HBM bandwidth per chip 2765 GBps
    "v5p": Chip("v5p", 459e12, 95 * GiB, 2765e9),
    # https://cloud.google.com/tpu/docs/v6e "System architecture": peak compute per chip (bf16) 918 TFLOPs;
    # HBM capacity per chip 32 GB; HBM bandwidth per chip 1640 GBps
    "v6e": Chip("v6e", 918e12, 32 * GiB, 1640e9),
}


def chip(name: str) -> Chip:
    if name not in CHIPS:
        raise ValueError(f"TPU chip {name!r}: known chips are {', '.join(sorted(CHIPS))}")
    return CHIPS[name]
