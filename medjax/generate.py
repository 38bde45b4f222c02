"""python -m medjax.generate --model=SPEC --prompt=TEXT: print a completion.

The prompt is tokenised with the model's tokenizer (BOS added when it has one); with --chat the
prompt is first wrapped in the chat template (--template, or the model family's default).
"""
from __future__ import annotations

from absl import app, flags

import medjax

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


def complete(lm, prompt: str, chat: bool = False, template: str | None = None, **kwargs) -> str:
    tok = lm.tokenizer
    if tok is None:
        raise ValueError(f"{lm.spec}: has no tokenizer files; cannot encode a text prompt")
    eos = tok.eos_id if tok.eos_id is not None else lm.config.eos_token_id
    if chat:  # the exact ids training put before a response, and the template's stop tokens
        from medjax.data.templates import default_template, encode_prompt, get_template, stop_ids

        chosen = get_template(template) if template else default_template(tok, lm.config.family)
        ids = encode_prompt([{"role": "user", "content": prompt}], chosen, tok)
        eos = stop_ids(chosen, tok) or eos
    else:
        ids = tok.encode(prompt)
        if tok.bos_id is not None and (not ids or ids[0] != tok.bos_id):
            ids = [tok.bos_id] + ids
    new = lm.generate([ids], eos_id=eos, **kwargs)[0]
    return tok.decode(new)


def main(argv):
    del argv
    lm = medjax.load(FLAGS.model)
    print(complete(lm, FLAGS.prompt, FLAGS.chat, FLAGS.template, max_new_tokens=FLAGS.max_new_tokens,
                   temperature=FLAGS.temperature, top_p=FLAGS.top_p, top_k=FLAGS.top_k, seed=FLAGS.seed))


if __name__ == "__main__":
    app.run(main)
