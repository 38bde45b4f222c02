"""python -m medjax.convert --src=SPEC --dst=SPEC: between hf:DIR, ckpt:DIR (and peft:DIR adapters).

Examples:
  python -m medjax.convert --src=hf:/models/llama-2-7b --dst=ckpt:/ckpts/llama-2-7b
  python -m medjax.convert --src=ckpt:runs/cp_ift --dst=hf:/exports/medllama --overwrite

The destination is written beside itself and renamed into place when complete; one that exists and
is not empty is replaced only with --overwrite. Bad flags are refused before anything is written.
"""
from __future__ import annotations

from absl import app, flags

from medjax.checkpoint.conversion import convert
from medjax.cli_logging import quiet_by_default

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "source spec: hf:DIR, ckpt:DIR or peft:DIR (with --base)", required=True)
flags.DEFINE_string("dst", None, "destination spec: hf:DIR, ckpt:DIR or peft:DIR", required=True)
flags.DEFINE_string("base", None, "base model spec for a peft: source")
flags.DEFINE_bool("merge", False, "merge adapters into the base weights before writing hf:")
flags.DEFINE_string("dtype", None, "weight dtype written to hf: (float32, bfloat16, float16); default: the model's")
flags.DEFINE_bool("overwrite", False, "replace a --dst that exists and is not empty (as a whole, once the new one "
                  "is complete)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet_by_default()
    try:  # bad flags and unreadable sources end in one line naming them; nothing is written
        convert(FLAGS.src, FLAGS.dst, FLAGS.base, FLAGS.merge, FLAGS.dtype, FLAGS.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
