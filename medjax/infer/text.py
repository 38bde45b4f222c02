"""Text in, text out: a prompt (optionally wrapped in the chat template) completed by an LM."""
from __future__ import annotations


def complete(lm, prompt: str, chat: bool = False, template: str | None = None, **kwargs) -> str:
    return complete_ids(lm, prompt, chat, template, **kwargs)[0]


def complete_ids(lm, prompt: str, chat: bool = False, template: str | None = None,
                 **kwargs) -> tuple[str, list[int], bool]:
    """(text, new token ids (a stop token that ended it included), whether a stop token ended it)."""
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
    stops = set(eos) if isinstance(eos, (list, tuple)) else {eos}
    return tok.decode(new), new, bool(new) and new[-1] in stops


def empty_completion_note(new_ids: list[int], stopped: bool, chat: bool) -> str:
    """What to tell the user instead of printing an empty line."""
    what = ("ended at once with its stop token" if stopped and len(new_ids) == 1 else
            f"generated {len(new_ids)} token(s) with no visible text ({new_ids[:8]})")
    return (f"[generate] the model {what}; nothing to print (try {'--nochat' if chat else '--chat'}, "
            "or more --max_new_tokens)")
