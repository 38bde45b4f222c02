"""Regenerates the general-domain (non-medical) text beside the medical default data.

    python -m medjax.assets.build_general_data [--output_dir=DIR] [--seed=0]

Writes, under DIR (default: medjax/assets/general, the committed copy), one paragraph per document,
blank lines between documents:
  general.txt        replay text for training (configs/cp_ift_replay.py)
  general_eval.txt   held-out documents, for a general-domain eval loss (forgetting)
The text is rendered from medjax/assets/general_text.py with a `random.Random` seeded by (seed, name),
so the output is byte-identical on every run.
"""
from __future__ import annotations

import argparse
import os
import random

from medjax.assets.build_default_data import split_off
from medjax.assets.general_text import render_general

GENERAL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "general")
EVAL_FRACTION = 0.1


def general_paths() -> dict[str, str]:
    """Absolute paths of the committed general-domain text: general_train and general_eval."""
    return {"general_train": os.path.join(GENERAL_DIR, "general.txt"),
            "general_eval": os.path.join(GENERAL_DIR, "general_eval.txt")}


def build(output_dir: str, seed: int = 0) -> None:
    docs = render_general(random.Random(f"{seed}:general"))
    train, held_out = split_off(docs, EVAL_FRACTION, random.Random(f"{seed}:split:general"))
    os.makedirs(output_dir, exist_ok=True)
    for name, part in (("general.txt", train), ("general_eval.txt", held_out)):
        with open(os.path.join(output_dir, name), "w", encoding="utf-8") as f:
            f.write("\n\n".join(part) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=GENERAL_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build(args.output_dir, args.seed)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
