"""The unification HTTP client against scripted servers on 127.0.0.1: where the key goes, retries, errors."""
import http.server
import json
import random
import socket
import threading
import time

import pytest

from medjax.data.unify_client import HttpGenerator, public_name

KEY = "sk-test-secret"


def _ok(text):
    return 200, {"Content-Type": "application/json"}, json.dumps({"choices": [{"message": {"content": text}}]}).encode()


class _Server:
    """Answers each request with the next scripted (status, headers, body[, delay_s]); the last one repeats."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, data, *delay = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                time.sleep(delay[0] if delay else 0)
                try:
                    self.send_response(status)
                    for name, value in {**headers, "Content-Length": str(len(data))}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    pass

            do_GET = do_POST  # a redirect turned into a GET still counts

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()


@pytest.fixture
def serve():
    servers = []
    yield lambda replies: servers.append(_Server(replies)) or servers[-1]
    for s in servers:
        s.httpd.shutdown()
        s.httpd.server_close()


@pytest.mark.parametrize("code", [302, 307])
def test_the_key_never_follows_a_redirect_to_another_origin(serve, monkeypatch, code):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    other = serve([_ok("the other host got the request")])
    first = serve([(code, {"Location": other.url + "/v1/chat/completions"}, b"")])
    with pytest.raises(RuntimeError, match="another origin") as error:
        HttpGenerator(first.url, max_retries=0)(["hi"])
    assert other.requests == [] and KEY not in str(error.value) and other.url in str(error.value)
    # Within the origin a 307 is followed, as the same POST with the key.
    same = serve([(307, {"Location": "/moved/chat/completions"}, b""), _ok("fine")])
    assert HttpGenerator(same.url)(["hi"]) == ["fine"]
    (_, path, headers, body), = same.requests[1:]
    assert path == "/moved/chat/completions" and headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(body)["messages"][0]["content"] == "hi"


def test_a_key_over_plain_http_to_a_remote_host_is_warned_about(caplog):
    def warned(url, key):
        caplog.clear()
        HttpGenerator(url, api_key=key)
        return any("plain http" in r.getMessage() for r in caplog.records)

    assert warned("http://api.example.com/v1", KEY)
    assert not warned("https://api.example.com/v1", KEY)
    assert not warned("http://127.0.0.1:8000", KEY) and not warned("http://localhost:8000", KEY)
    assert not warned("http://api.example.com/v1", "")


def test_userinfo_is_basic_auth_and_never_recorded(serve, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = serve([_ok("fine")])
    spec = server.url.replace("//", "//user:pa%40ss@") + "/v1?api-version=2"
    generator = HttpGenerator(spec)
    assert generator(["hi"]) == ["fine"] and generator.name == public_name(spec) == server.url + "/v1"
    (_, path, headers, _), = server.requests
    assert path == "/v1/chat/completions?api-version=2" and headers["Authorization"] == "Basic dXNlcjpwYUBzcw=="


@pytest.mark.parametrize("spec, url", [
    ("http://h:1", "http://h:1/v1/chat/completions"),
    ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
    ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
    ("https://h/openai/v1?api-version=2", "https://h/openai/v1/chat/completions?api-version=2"),
])
def test_the_endpoint_path_is_added_once(spec, url):
    assert HttpGenerator(spec).url == url


def test_throttling_and_server_errors_are_retried_with_backoff(serve):
    server = serve([(503, {"Retry-After": "7"}, b"busy"), (429, {}, b"slow down"), _ok("done")])
    sleeps = []
    generator = HttpGenerator(server.url, max_retries=2, backoff_s=0.5, sleep=sleeps.append, rng=random.Random(0))
    assert generator(["q"]) == ["done"] and len(server.requests) == 3
    assert sleeps[0] == 7.0 and 0.5 <= sleeps[1] <= 1.0  # Retry-After, then 0.5 * 2**1 with jitter in [0.5, 1]
    failing = serve([(500, {}, b"oops")])
    sleeps.clear()
    with pytest.raises(RuntimeError, match=r"HTTP 500.*gave up after 3 attempts"):
        HttpGenerator(failing.url, max_retries=2, backoff_s=0.5, sleep=sleeps.append)(["q"])
    assert len(failing.requests) == 3 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_a_timeout_is_retried(serve):
    server = serve([(*_ok("too late"), 0.5), _ok("in time")])
    sleeps = []
    assert HttpGenerator(server.url, timeout=0.1, sleep=sleeps.append)(["q"]) == ["in time"]
    assert len(sleeps) == 1 and len(server.requests) == 2


def test_client_errors_refused_connections_and_non_json_fail_at_once_without_the_key(serve, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    sleeps = []
    bad = serve([(400, {}, f"bad request from {KEY}".encode())])
    with pytest.raises(RuntimeError, match="HTTP 400") as error:
        HttpGenerator(bad.url, sleep=sleeps.append)(["q"])
    assert KEY not in str(error.value) and bad.url in str(error.value) and len(bad.requests) == 1
    html = serve([(200, {"Content-Type": "text/html"}, b"<html>log in first</html>")])
    with pytest.raises(RuntimeError, match="not JSON.*text/html") as error:
        HttpGenerator(html.url + "/v1", sleep=sleeps.append)(["q"])
    assert KEY not in str(error.value) and html.url in str(error.value)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="connection refused") as error:
        HttpGenerator(f"http://127.0.0.1:{port}", sleep=sleeps.append)(["q"])
    assert KEY not in str(error.value) and f"127.0.0.1:{port}" in str(error.value)
    assert sleeps == []
