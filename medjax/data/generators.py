"""Text generators for data unification: a medjax model or an OpenAI-compatible HTTP endpoint.

`make_generator(spec)`: "hf:DIR" / "ckpt:DIR" load a medjax model (greedy decoding through
`medjax.load(...).generate`, prompts rendered with the data chat templates); "http://..." or
"https://..." post to `/v1/chat/completions` (the URL may give the full path), with the key from
$OPENAI_API_KEY when set: see unify_client.py. A generator is a callable: list of user prompts -> list of replies.
"""
from __future__ import annotations

from medjax.data import templates
from medjax.data.unify_client import HttpGenerator


class MedjaxGenerator:
    def __init__(self, spec: str, max_new_tokens: int = 256, template: str | None = None):
        import medjax

        self.lm = medjax.load(spec)
        if self.lm.tokenizer is None:
            raise ValueError(f"{spec}: the model has no tokenizer files, so prompts cannot be encoded")
        self.template = (templates.get_template(template) if template
                         else templates.default_template(self.lm.tokenizer, self.lm.config.family))
        self.max_new_tokens = max_new_tokens
        self.stops = templates.stop_ids(self.template, self.lm.tokenizer)

    def __call__(self, prompts: list[str]) -> list[str]:
        tok = self.lm.tokenizer
        ids = [templates.encode_prompt([{"role": "user", "content": p}], self.template, tok) for p in prompts]
        out = self.lm.generate(ids, max_new_tokens=self.max_new_tokens, temperature=0.0, eos_id=self.stops)
        return [tok.decode([i for i in new if i not in self.stops]).strip() for new in out]


def make_generator(spec: str, max_new_tokens: int = 256, template: str | None = None, model: str = "default",
                   timeout: float = 120.0, max_retries: int = 5):
    if spec.startswith(("http://", "https://")):
        return HttpGenerator(spec, model=model, max_new_tokens=max_new_tokens, timeout=timeout, max_retries=max_retries)
    if spec.startswith(("hf:", "ckpt:")):
        return MedjaxGenerator(spec, max_new_tokens=max_new_tokens, template=template)
    raise ValueError(f"--generator={spec!r}: expected hf:DIR, ckpt:DIR or an http(s):// endpoint")
