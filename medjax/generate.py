"""python -m medjax.generate --model=SPEC --prompt=TEXT: print a completion.

The prompt is tokenised with the model's tokenizer (BOS added when it has one); with --chat the
prompt is first wrapped in the chat template (--template, or the model family's default).
"""
from __future__ import annotations

from absl import app, flags

import medjax
from medjax.infer.text import complete

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "model spec: hf:DIR or ckpt:DIR", required=True)
flags.DEFINE_string("prompt", None, "prompt text", required=True)
flags.DEFINE_integer("max_new_tokens", 64, "number of tokens to generate at most")
flags.DEFINE_float("temperature", 0.0, "0 = greedy")
flags.DEFINE_float("top_p", 1.0, "nucleus sampling mass")
flags.DEFINE_integer("top_k", 0, "sample among the k most likely tokens (0 = all)")
flags.DEFINE_integer("seed", 0, "sampling seed")
flags.DEFINE_bool("chat", False, "wrap the prompt in the chat template as a user turn")
flags.DEFINE_string("template", None, "chat template name (with --chat)")


def main(argv):
    del argv
    lm = medjax.load(FLAGS.model)
    print(complete(lm, FLAGS.prompt, FLAGS.chat, FLAGS.template, max_new_tokens=FLAGS.max_new_tokens,
                   temperature=FLAGS.temperature, top_p=FLAGS.top_p, top_k=FLAGS.top_k, seed=FLAGS.seed))


if __name__ == "__main__":
    app.run(main)
