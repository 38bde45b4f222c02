"""The HTTP generator of data unification: one OpenAI-compatible chat completion per prompt.

The key ($OPENAI_API_KEY, or `user:password@` in the URL as Basic auth) goes only to the origin
(scheme, host, port) the user named: a redirect to another origin is refused, and a key sent over
plain http to a non-local host is warned about. Errors and provenance name the URL without its
userinfo or query string, and never the key. Throttling and server trouble (429, 5xx, timeouts,
dropped connections) are retried `max_retries` times with exponential backoff and jitter, or after
the server's Retry-After; other 4xx replies, refused connections and non-JSON replies fail at once.
"""
from __future__ import annotations

import base64
import email.utils
import http.client
import ipaddress
import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from absl import logging

MAX_REDIRECTS = 5
MAX_RETRY_AFTER_S = 600.0  # a Retry-After beyond this is a misconfigured server, not advice
_REDIRECTS = (301, 302, 303, 307, 308)


def public_name(spec: str) -> str:
    """`spec` as it may be recorded: an http(s) URL loses its userinfo, query string and fragment."""
    if not spec.startswith(("http://", "https://")):
        return spec
    parts = urllib.parse.urlsplit(spec)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def endpoint_url(spec: str) -> str:
    """The chat completions URL of `spec`: a base URL (with or without /v1) or the full path."""
    parts = urllib.parse.urlsplit(spec)
    try:
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as e:
        raise ValueError(f"--generator={public_name(spec)!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--generator={public_name(spec)!r}: expected http(s)://HOST[:PORT][/PATH]")
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions" if path.endswith("/v1") else "/v1/chat/completions"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hands every redirect back as an HTTPError, so that HttpGenerator decides where the key goes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Transient(Exception):
    """A failure worth retrying: a timeout or a dropped connection."""


class HttpGenerator:
    def __init__(self, spec: str, model: str = "default", max_new_tokens: int = 256, timeout: float = 120.0,
                 max_retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 api_key: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        if timeout <= 0 or max_retries < 0:
            raise ValueError(f"--timeout must be > 0 and --max_retries >= 0; got {timeout} and {max_retries}")
        parts = urllib.parse.urlsplit(endpoint_url(spec))
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))  # no userinfo
        self.name = public_name(spec)
        self.model, self.max_new_tokens, self.timeout, self.max_retries = model, max_new_tokens, timeout, max_retries
        self.backoff_s, self.max_backoff_s, self.sleep = backoff_s, max_backoff_s, sleep
        self.rng = rng or random.Random()
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers = {"Content-Type": "application/json"}
        password = urllib.parse.unquote(parts.password or "")
        self._secrets = [s for s in (api_key, password) if s]
        if parts.username is not None:
            if api_key:
                raise ValueError(f"--generator={self.name!r}: credentials both in the URL and in $OPENAI_API_KEY; "
                                 "give one")
            basic = f"{urllib.parse.unquote(parts.username)}:{password}".encode()
            self.headers["Authorization"] = f"Basic {base64.b64encode(basic).decode()}"
        elif api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        if "Authorization" in self.headers and parts.scheme == "http" and not _is_local(parts.hostname):
            logging.warning("%s: the API key goes over plain http to a non-local host; use https", self.name)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __call__(self, prompts: list[str]) -> list[str]:
        return [self._one(p) for p in prompts]

    def _one(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0.0, "max_tokens": self.max_new_tokens}).encode()
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                status, headers, data = self._post(body)
            except _Transient as e:
                failure = str(e)
            else:
                if status == 200:
                    return self._content(data, headers)
                failure = f"HTTP {status}: {self._snippet(data)}"
                if status != 429 and status < 500:
                    raise RuntimeError(f"{self.name}: {failure}")
                wait = _retry_after(headers.get("Retry-After"))
            if attempt == self.max_retries:
                break
            if wait is None:  # exponential backoff with jitter, so that many clients do not retry in step
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * self.rng.uniform(0.5, 1.0)
            logging.warning("%s: %s; retry %d of %d in %.1fs", self.name, failure, attempt + 1, self.max_retries, wait)
            self.sleep(wait)
        raise RuntimeError(f"{self.name}: {failure} (gave up after {self.max_retries + 1} attempts; see --max_retries)")

    def _post(self, body: bytes):
        """(status, headers, body) of the POST, following redirects within the origin only."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            request = urllib.request.Request(url, data=body, headers=self.headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return response.status, response.headers, response.read()
            except urllib.error.HTTPError as e:
                if e.code not in _REDIRECTS:
                    return e.code, e.headers, e.read()
                url = self._redirect(url, e.code, e.headers.get("Location"))
            except urllib.error.URLError as e:
                if isinstance(e.reason, ConnectionRefusedError):
                    raise RuntimeError(f"{self.name}: connection refused; is the server running at that "
                                       "host and port?") from None
                if isinstance(e.reason, (TimeoutError, ConnectionError)):
                    raise _Transient(self._reason(e.reason)) from None
                raise RuntimeError(f"{self.name}: cannot connect: {e.reason}") from None
            except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
                raise _Transient(self._reason(e)) from None
        raise RuntimeError(f"{self.name}: more than {MAX_REDIRECTS} redirects")

    def _redirect(self, url: str, code: int, location: str | None) -> str:
        target = urllib.parse.urljoin(url, location or "")
        if _origin(target) != _origin(url):
            raise RuntimeError(f"{self.name}: HTTP {code} redirects to {public_name(target)}, another origin; "
                               "refused, the key goes only where --generator points (give that URL if you trust it)")
        if code not in (307, 308):  # 301/302/303 would turn the POST into a GET
            raise RuntimeError(f"{self.name}: HTTP {code} redirects to {public_name(target)}; give that URL instead")
        return target

    def _reason(self, error: BaseException) -> str:
        return f"timed out after {self.timeout:g}s (see --timeout)" if isinstance(error, TimeoutError) else repr(error)

    def _content(self, data: bytes, headers) -> str:
        try:
            reply = json.loads(data)
        except ValueError:
            raise RuntimeError(f"{self.name}: the reply is not JSON (Content-Type "
                               f"{headers.get('Content-Type')!r}): {self._snippet(data)}") from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise RuntimeError(f"{self.name}: not an OpenAI chat completion reply: {self._snippet(data)}")
        return content.strip()

    def _snippet(self, data: bytes) -> str:
        text = data[:300].decode("utf-8", errors="replace")
        for secret in self._secrets:  # a server may echo the request
            text = text.replace(secret, "***")
        return repr(text)
