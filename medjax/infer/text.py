"""Text in, text out: a prompt (optionally wrapped in the chat template) completed by an LM."""
from __future__ import annotations


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
