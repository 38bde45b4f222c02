"""Text generators for data unification: a medjax model or an OpenAI-compatible HTTP endpoint.

`make_generator(spec)`: "hf:DIR" / "ckpt:DIR" load a medjax model (greedy decoding through
`medjax.load(...).generate`, prompts rendered with the data chat templates); "http://..." or
"https://..." post to `/v1/chat/completions` (the URL may give the full path), with the key from
$OPENAI_API_KEY when set. A generator is a callable: list of user prompts -> list of replies.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from medjax.data import templates


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


class HttpGenerator:
    def __init__(self, url: str, model: str = "default", max_new_tokens: int = 256, timeout: float = 120.0):
        self.url = url if url.rstrip("/").endswith("/chat/completions") else url.rstrip("/") + "/v1/chat/completions"
        self.model, self.max_new_tokens, self.timeout = model, max_new_tokens, timeout

    def __call__(self, prompts: list[str]) -> list[str]:
        return [self._one(p) for p in prompts]

    def _one(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0.0, "max_tokens": self.max_new_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{self.url}: HTTP {e.code}: {e.read()[:300]!r}") from None
        try:
            return reply["choices"][0]["message"]["content"].strip()
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.url}: not an OpenAI chat completion reply: {str(reply)[:300]}") from None


def make_generator(spec: str, max_new_tokens: int = 256, template: str | None = None, model: str = "default"):
    if spec.startswith(("http://", "https://")):
        return HttpGenerator(spec, model=model, max_new_tokens=max_new_tokens)
    if spec.startswith(("hf:", "ckpt:")):
        return MedjaxGenerator(spec, max_new_tokens=max_new_tokens, template=template)
    raise ValueError(f"--generator={spec!r}: expected hf:DIR, ckpt:DIR or an http(s):// endpoint")
