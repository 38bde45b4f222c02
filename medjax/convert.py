"""python -m medjax.convert --src=SPEC --dst=SPEC: between hf:DIR, ckpt:DIR (and peft:DIR adapters).

Examples:
  python -m medjax.convert --src=hf:/models/llama-2-7b --dst=ckpt:/ckpts/llama-2-7b
  python -m medjax.convert --src=ckpt:runs/cp_ift --dst=hf:/exports/medllama
"""
from __future__ import annotations

from absl import app, flags, logging

import medjax
from medjax.specs import parse_spec

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "source spec: hf:DIR, ckpt:DIR or peft:DIR (with --base)", required=True)
flags.DEFINE_string("dst", None, "destination spec: hf:DIR, ckpt:DIR or peft:DIR", required=True)
flags.DEFINE_string("base", None, "base model spec for a peft: source")
flags.DEFINE_bool("merge", False, "merge adapters into the base weights before writing hf:")
flags.DEFINE_string("dtype", None, "weight dtype written to hf: (float32, bfloat16, float16); default: the model's")


def convert(src: str, dst: str, base: str | None = None, merge: bool = False, dtype: str | None = None) -> None:
    s, d = parse_spec(src), parse_spec(dst)
    if s.kind == "peft" or d.kind == "peft" or merge:
        from medjax.peft.convert import convert_peft  # adapters: their own module

        convert_peft(s, d, base=base, merge=merge, dtype=dtype)
        return
    lm = medjax.load(src)
    logging.info("loaded %s", src)
    lm.save(dst, dtype=dtype) if d.kind == "hf" else lm.save(dst)
    print(f"wrote {dst}")


def main(argv):
    del argv
    convert(FLAGS.src, FLAGS.dst, FLAGS.base, FLAGS.merge, FLAGS.dtype)


if __name__ == "__main__":
    app.run(main)
