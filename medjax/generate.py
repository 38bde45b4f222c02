"""python -m medjax.generate --model=SPEC --prompt=TEXT: print a completion.

The prompt is tokenised with the model's tokenizer (BOS added when it has one). Whether it is first
wrapped in a chat template follows how the model was trained (medjax/infer/chat_default.py: an
instruction-tuned stage uses the template it trained with) unless --chat or --nochat says otherwise;
--template names one. A completion with no text is reported on stderr instead of an empty line.
"""
from __future__ import annotations

import sys

from absl import app, flags

from medjax.cli_logging import quiet_by_default
from medjax.xla_cpu import prefer_eigen_dots

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "model spec: hf:DIR or ckpt:DIR", required=True)
flags.DEFINE_string("prompt", None, "prompt text", required=True)
flags.DEFINE_integer("max_new_tokens", 64, "number of tokens to generate at most")
flags.DEFINE_float("temperature", 0.0, "0 = greedy")
flags.DEFINE_float("top_p", 1.0, "nucleus sampling mass")
flags.DEFINE_integer("top_k", 0, "sample among the k most likely tokens (0 = all)")
flags.DEFINE_integer("seed", 0, "sampling seed")
flags.DEFINE_bool("chat", None, "wrap the prompt in the chat template as a user turn (default: when the model "
                  "was instruction-tuned or its tokenizer has a template; --nochat for plain text)")
flags.DEFINE_string("template", None, "chat template name (implies --chat unless --nochat)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    prefer_eigen_dots()  # first: XLA reads XLA_FLAGS when JAX starts its backend
    import medjax
    from medjax.infer.chat_default import trained_chat
    from medjax.infer.text import complete_ids, empty_completion_note

    quiet_by_default()
    try:
        lm = medjax.load(FLAGS.model)
        chat, template, why = trained_chat(FLAGS.model, lm.tokenizer)
        if FLAGS.template is not None:
            chat, template, why = True, FLAGS.template, "--template"
        if FLAGS.chat is not None:
            chat, why = FLAGS.chat, "--chat" if FLAGS.chat else "--nochat"
        print(f"[generate] {'chat template ' + (template or 'default') if chat else 'plain prompt'} ({why})",
              file=sys.stderr)
        text, new_ids, stopped = complete_ids(lm, FLAGS.prompt, chat, template, max_new_tokens=FLAGS.max_new_tokens,
                                              temperature=FLAGS.temperature, top_p=FLAGS.top_p, top_k=FLAGS.top_k,
                                              seed=FLAGS.seed)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None
    if text.strip():
        print(text)
    else:
        print(empty_completion_note(new_ids, stopped, chat), file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
